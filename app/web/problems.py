"""Errors as ``application/problem+json`` (RFC 9457).

Handlers raise :class:`Problem`; :func:`problem_middleware` turns it, and every
aiohttp HTTP error (unknown path, wrong method, body too large), into a problem
document. Anything else that escapes a handler is logged with its traceback and
answered with a 500 problem that names no internals.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import web

__all__ = ["PROBLEM_JSON", "Problem", "problem_middleware", "problem_response"]

PROBLEM_JSON = "application/problem+json"

log = logging.getLogger("kairos.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """A problem document: ``type`` is ``about:blank``, so ``title`` is the status phrase."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return web.Response(
        body=orjson.dumps(body),
        status=status,
        content_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self, instance: str | None = None) -> web.Response:
        return problem_response(
            self.status, self.detail, instance=instance, headers=self.headers, **self.extra
        )


def bad_parameter(name: str, reason: str) -> Problem:
    """400 for one invalid request parameter."""
    return Problem(
        400,
        f"Invalid parameter {name!r}: {reason}",
        invalid_params=[{"name": name, "reason": reason}],
    )


_DETAIL_FOR_STATUS = {
    404: "No such resource; GET /api/openapi.json lists the API.",
    405: "Method not allowed on this path; see the Allow header.",
    413: "Request body too large.",
}


def _from_http_error(exc: web.HTTPException, path: str) -> web.Response:
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
    detail = _DETAIL_FOR_STATUS.get(exc.status) or exc.text or exc.reason
    if exc.status == 413 and exc.text:
        detail = f"Request body too large: {exc.text}"
    return problem_response(exc.status, str(detail), instance=path, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error of every route with a problem document."""
    try:
        return await handler(request)
    except Problem as problem:
        return problem.response(instance=request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_error(exc, request.path)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception(
            "unhandled error in web handler", extra={"method": request.method, "path": request.path}
        )
        return problem_response(
            500,
            "Internal error while answering this request; the worker log has the details.",
            instance=request.path,
        )
