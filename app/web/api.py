"""Handlers of the HTTP API (``/api/*``), the probes and the dashboard files.

Every handler validates its parameters (400 with the reason), checks tokens
(:mod:`app.web.auth`), and reads or changes state only through the
:class:`~app.web.provider.StateProvider`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp_sse import EventSourceResponse

from app.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from app.metrics import KairosMetrics
from app.web.auth import require_admin, require_read
from app.web.monitor import Monitor
from app.web.openapi import (
    DETECTION_KINDS,
    KEY_MAX_LENGTH,
    RULE_NAME_PATTERN,
    STATIC_NAME_PATTERN,
    document,
)
from app.web.problems import Problem, bad_parameter
from app.web.provider import StateProvider
from app.web.routing import SERVED_BY, KeyRouter
from app.web.settings import WebSettings
from cep.rules.errors import RuleValidationError

__all__ = ["STATIC_DIR", "Api"]

STATIC_DIR = Path(__file__).parent / "static"

_RULE_NAME = re.compile(RULE_NAME_PATTERN)
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(ya?ml|json)$")
_STATIC_NAME = re.compile(STATIC_NAME_PATTERN)
_STATIC_TYPES = {
    "css": "text/css",
    "js": "text/javascript",
    "svg": "image/svg+xml",
    "ico": "image/x-icon",
}
LIMIT_MAX = 1000
STATS_SECONDS_MAX = 600


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(value, default=str),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def _int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,7}", raw):
        raise bad_parameter(name, f"must be an integer from {low} to {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise bad_parameter(name, f"must be an integer from {low} to {high}, got {value}")
    return value


def _rule_param(request: web.Request) -> str | None:
    raw = request.query.get("rule")
    if raw is None:
        return None
    if not _RULE_NAME.fullmatch(raw):
        raise bad_parameter("rule", f"must be a rule name ({RULE_NAME_PATTERN}), got {raw!r}")
    return raw


def _kind_param(request: web.Request) -> str | None:
    raw = request.query.get("kind")
    if raw is None:
        return None
    if raw not in DETECTION_KINDS:
        raise bad_parameter("kind", f"must be one of {', '.join(DETECTION_KINDS)}, got {raw!r}")
    return raw


def rule_of(event: dict[str, Any]) -> str | None:
    """The rule of a detection CloudEvent (its ``source`` is ``/kairos/rules/<rule>/v<n>``)."""
    parts = str(event.get("source", "")).split("/")
    if len(parts) >= 4 and parts[1] == "kairos" and parts[2] == "rules":
        return parts[3]
    return None


def _issue(issue: Any) -> dict[str, Any]:
    return {
        "file": getattr(issue, "file", None),
        "path": getattr(issue, "path", None),
        "message": getattr(issue, "message", str(issue)),
        "line": getattr(issue, "line", None),
        "column": getattr(issue, "column", None),
    }


@dataclass
class Api:
    """The request handlers, bound to one provider and one router."""

    provider: StateProvider
    settings: WebSettings
    router: KeyRouter
    monitor: Monitor
    metrics: KairosMetrics
    sse_ping_seconds: float = 15.0
    _streams: set[EventSourceResponse] = field(default_factory=set)

    def close_streams(self) -> None:
        """End every open event stream (on shutdown: a browser tab must not hold the worker)."""
        for resp in list(self._streams):
            resp.stop_streaming()

    # -- probes ----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        state = self.monitor.readiness()
        if state.ready:
            return _json({"status": "ready"})
        body = {
            "status": "stalled" if state.stalled else "starting",
            "reason": state.reason,
            "not_ready_for_s": round(state.not_ready_for, 1),
            "stall_after_s": self.settings.recovery_stall_seconds,
        }
        return _json(body, status=503, headers={"Retry-After": "5"})

    async def metrics_text(self, request: web.Request) -> web.Response:
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = METRICS_CONTENT_TYPE
        return resp

    async def openapi(self, request: web.Request) -> web.Response:
        return _json(document())

    # -- dashboard ---------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = STATIC_DIR / name
        if not _STATIC_NAME.fullmatch(name) or not path.is_file():
            raise Problem(404, f"No static file {name!r}.")
        content_type = _STATIC_TYPES[name.rsplit(".", 1)[1]]
        return web.FileResponse(
            path, headers={"Cache-Control": "no-cache", "Content-Type": content_type}
        )

    # -- reads -------------------------------------------------------------------------------

    async def key(self, request: web.Request) -> web.Response:
        require_read(request, self.settings)
        key = request.match_info["key"]
        if len(key) > KEY_MAX_LENGTH:
            raise bad_parameter("key", f"must be at most {KEY_MAX_LENGTH} characters")
        forwarded = await self.router.forward(key, request)
        if forwarded is not None:
            return forwarded
        state = await self.provider.key_state(key)
        served_by = {SERVED_BY: self.router.identity}
        ready, why = self.provider.ready()
        if state is None and not ready:
            # This worker owns the key but may not have read its state back yet (a takeover
            # or a restart): "unknown" is not known yet.
            raise Problem(
                503,
                f"This worker owns key {key!r} but is not ready ({why}); its state may not be "
                "recovered yet: retry in a few seconds.",
                headers={**served_by, "Retry-After": "2"},
            )
        if state is not None and not ready:
            state = {**state, "recovering": why or "not ready"}
        if state is None:
            raise Problem(
                404,
                f"Kairos knows nothing about key {key!r}: no partial match, context or recent "
                "detection (keys are case-sensitive).",
                headers=served_by,
            )
        return _json(state, headers=served_by)

    async def rules(self, request: web.Request) -> web.Response:
        require_read(request, self.settings)
        return _json({"rules": self.provider.rules()})

    async def rule(self, request: web.Request) -> web.Response:
        require_read(request, self.settings)
        name = request.match_info["name"]
        for rule in self.provider.rules():
            if rule.get("name") == name:
                return _json(rule)
        raise Problem(404, f"No active rule named {name!r}; GET /api/rules lists them.")

    async def matches(self, request: web.Request) -> web.Response:
        require_read(request, self.settings)
        rule = _rule_param(request)
        kind = _kind_param(request)
        limit = _int_param(request, "limit", 50, 1, LIMIT_MAX)
        return _json({"detections": self.provider.recent_detections(rule, kind, limit)})

    async def stats(self, request: web.Request) -> web.Response:
        require_read(request, self.settings)
        seconds = _int_param(request, "seconds", 300, 1, STATS_SECONDS_MAX)
        totals = self.metrics.totals()
        return _json(
            {
                "worker": self.router.identity,
                "series": self.monitor.series(seconds),
                "totals": {
                    "events": totals.events,
                    "matches": totals.matches,
                    "timeouts": totals.timeouts,
                    "late": totals.late,
                    "dlq": totals.dlq,
                },
            }
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        require_read(request, self.settings, allow_query=True)
        rule = _rule_param(request)
        kind = _kind_param(request)
        subscription = self.provider.subscribe()
        resp = EventSourceResponse(
            ping_interval=self.sse_ping_seconds,
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        await resp.prepare(request)
        self._streams.add(resp)
        pump = asyncio.create_task(self._pump(subscription, resp, rule, kind))
        closed = asyncio.create_task(resp.wait())
        try:
            # Let the pump reach its first wait, so a generator-based subscription is
            # registered before "hello" tells the client that it is listening.
            for _ in range(3):
                await asyncio.sleep(0)
            await resp.send(orjson.dumps({"worker": self.router.identity}).decode(), event="hello")
            await asyncio.wait({pump, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._streams.discard(resp)
            for task in (pump, closed):
                task.cancel()
            for task in (pump, closed):
                with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
                    await task
            aclose = getattr(subscription, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        return resp

    @staticmethod
    def _wanted(event: dict[str, Any], rule: str | None, kind: str | None) -> bool:
        if rule is not None and rule_of(event) != rule:
            return False
        return (
            kind is None or event.get("kairoskind") == kind or event.get("type") == f"kairos.{kind}"
        )

    async def _pump(
        self, subscription: Any, resp: EventSourceResponse, rule: str | None, kind: str | None
    ) -> None:
        async for event in subscription:
            if not self._wanted(event, rule, kind):
                continue
            await resp.send(
                orjson.dumps(event, default=str).decode(),
                event="detection",
                id=str(event["id"]) if event.get("id") is not None else None,
            )

    # -- changes -----------------------------------------------------------------------------

    async def apply_rule(self, request: web.Request) -> web.Response:
        require_admin(request, self.settings)
        filename = request.query.get("filename")
        if filename is None:
            filename = "rule.json" if request.content_type == "application/json" else "rule.yaml"
        elif not _FILENAME.fullmatch(filename):
            raise bad_parameter(
                "filename", "must be a plain file name ending in .yaml, .yml or .json"
            )
        raw = await request.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Problem(400, "The rule file must be UTF-8 text.") from None
        if not text.strip():
            raise Problem(400, "Send the rule file (YAML or JSON) as the request body.")
        try:
            applied = await self.provider.apply_rule(text, filename)
        except RuleValidationError as exc:
            errors = [_issue(issue) for issue in exc.errors]
            raise Problem(
                422,
                f"The rule file is not valid ({len(errors)} error(s)); nothing was applied.",
                errors=errors,
            ) from None
        name = applied.get("name")
        headers = {"Location": f"/api/rules/{name}"} if name else None
        return _json(applied, status=201, headers=headers)

    async def delete_rule(self, request: web.Request) -> web.Response:
        require_admin(request, self.settings)
        name = request.match_info["name"]
        if not _RULE_NAME.fullmatch(name) or not await self.provider.delete_rule(name):
            raise Problem(404, f"No active rule named {name!r}; GET /api/rules lists them.")
        return web.Response(status=204)
