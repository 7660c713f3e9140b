"""An in-memory :class:`~app.web.provider.StateProvider` for the web view's unit tests.

A test seam (like httpx's mock transport): the views run unchanged against it;
the runtime's implementation is tested against the real broker in
tests/integration/test_web_*.py.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import yaml

from cep.rules.errors import RuleIssue, RuleValidationError

_NAME = re.compile(r"^[a-z0-9-]+$")


class Subscription:
    """Registered when created (not on first iteration), like the runtime's."""

    def __init__(self, owner: FakeProvider) -> None:
        self.owner = owner
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        owner.subscribers.append(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.queue.get()

    async def aclose(self) -> None:
        if self in self.owner.subscribers:
            self.owner.subscribers.remove(self)


class FakeProvider:
    """State kept in dicts; tests arrange it directly."""

    def __init__(self) -> None:
        self.is_ready: tuple[bool, str] = (True, "")
        self.keys: dict[str, dict[str, Any]] = {}
        self.rule_list: dict[str, dict[str, Any]] = {}
        self.detections: list[dict[str, Any]] = []
        self.subscribers: list[Subscription] = []
        self.applied: list[tuple[str, str]] = []

    # -- arranging -------------------------------------------------------------------------

    def add_rule(self, name: str, version: int = 1, **extra: Any) -> dict[str, Any]:
        rule = {
            "name": name,
            "version": version,
            "source": "events",
            "stages": ["first", "second"],
            "counts": {"events": 0, "matches": 0, "timeouts": 0, "late": 0},
            "last_error": None,
            **extra,
        }
        self.rule_list[name] = rule
        return rule

    def publish(self, event: dict[str, Any]) -> None:
        self.detections.insert(0, event)
        for sub in list(self.subscribers):
            sub.queue.put_nowait(event)

    # -- the protocol --------------------------------------------------------------------------

    def ready(self) -> tuple[bool, str]:
        return self.is_ready

    def key_table_name(self) -> str:
        return "kairos-state"

    async def key_state(self, key: str) -> dict[str, Any] | None:
        return self.keys.get(key)

    def rules(self) -> list[dict[str, Any]]:
        return list(self.rule_list.values())

    def recent_detections(
        self, rule: str | None, kind: str | None, limit: int
    ) -> list[dict[str, Any]]:
        out = [
            d
            for d in self.detections
            if (rule is None or d["source"].split("/")[3] == rule)
            and (kind is None or kind in (d["kairoskind"], d["type"].split(".")[1]))
        ]
        return out[:limit]

    def subscribe(self) -> Subscription:
        return Subscription(self)

    async def apply_rule(self, text: str, filename: str) -> dict[str, Any]:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise RuleValidationError([RuleIssue(filename, "", f"not YAML: {exc}")]) from None
        issues = []
        if not isinstance(doc, dict):
            raise RuleValidationError([RuleIssue(filename, "", "a rule file is a mapping")])
        name, version = doc.get("name"), doc.get("version")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            issues.append(RuleIssue(filename, "name", "must match [a-z0-9-]+"))
        if not isinstance(version, int) or isinstance(version, bool):
            issues.append(RuleIssue(filename, "version", "must be an integer"))
        if issues:
            raise RuleValidationError(issues)
        self.applied.append((filename, text))
        return self.add_rule(name, version)

    async def delete_rule(self, name: str) -> bool:
        return self.rule_list.pop(name, None) is not None


def detection(rule: str, key: str, kind: str = "match", n: int = 1) -> dict[str, Any]:
    """A CloudEvents dict shaped like ``cep.rules`` ``Detection.to_cloudevent()``."""
    return {
        "specversion": "1.0",
        "id": f"{rule}-{key}-{n}",
        "source": f"/kairos/rules/{rule}/v1",
        "type": "kairos.offer" if kind == "match" else "kairos.alert",
        "subject": key,
        "datacontenttype": "application/json",
        "time": "2026-11-25T12:00:00.000Z",
        "kairoskind": kind,
        "data": {"key": key, "n": n},
    }
