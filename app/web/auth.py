"""Bearer-token checks for reads (optional) and rule changes (admin)."""

from __future__ import annotations

import hmac

from aiohttp import web

from app.web.problems import Problem
from app.web.settings import WebSettings

__all__ = ["require_admin", "require_read"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="kairos"'}
_INVALID = {"WWW-Authenticate": 'Bearer realm="kairos", error="invalid_token"'}


def _presented(request: web.Request, allow_query: bool) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if allow_query:
        # EventSource cannot send headers: the stream also accepts ?access_token= (RFC 6750 §2.3).
        return request.query.get("access_token") or None
    return None


def _matches(token: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(token.encode(), expected.encode())


def require_admin(request: web.Request, settings: WebSettings) -> None:
    """Raise 403 when rule changes are disabled, 401 without the admin token."""
    if settings.admin_token is None:
        raise Problem(
            403,
            "Rule changes over HTTP are disabled on this worker. To enable them, set "
            "KAIROS_ADMIN_TOKEN on every worker and send 'Authorization: Bearer <token>'.",
        )
    token = _presented(request, allow_query=False)
    if token is None:
        raise Problem(
            401,
            "This needs the admin token: send 'Authorization: Bearer <KAIROS_ADMIN_TOKEN>'.",
            headers=_CHALLENGE,
        )
    if not _matches(token, settings.admin_token):
        raise Problem(401, "The bearer token is not the admin token.", headers=_INVALID)


def require_read(request: web.Request, settings: WebSettings, *, allow_query: bool = False) -> None:
    """Raise 401 when a read token is configured and the request does not carry it."""
    if settings.read_token is None:
        return
    token = _presented(request, allow_query)
    if token is None:
        raise Problem(
            401,
            "Reads need a token on this worker: send 'Authorization: Bearer <KAIROS_READ_TOKEN>'.",
            headers=_CHALLENGE,
        )
    if not (_matches(token, settings.read_token) or _matches(token, settings.admin_token)):
        raise Problem(401, "The bearer token is not valid for reads.", headers=_INVALID)
