"""The part of the worker settings the web view uses.

The values come from :class:`app.settings.Settings` (environment variables are
declared there, once); tests build a :class:`WebSettings` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["WebSettings"]


@dataclass(frozen=True)
class WebSettings:
    """How the HTTP API is protected and how long it waits."""

    admin_token: str | None = None
    """Bearer token for ``POST``/``DELETE`` on ``/api/rules`` (``KAIROS_ADMIN_TOKEN``).
    ``None``: rule changes over HTTP are disabled (403)."""

    read_token: str | None = None
    """When set (``KAIROS_READ_TOKEN``), every ``/api/*`` read needs
    ``Authorization: Bearer <token>`` (the admin token works too). ``/healthz``,
    ``/readyz``, ``/metrics`` and the dashboard's static files stay open."""

    recovery_stall_seconds: float = 300.0
    """Not ready for longer than this: ``/readyz`` and the log report the recovery as
    stalled (``KAIROS_RECOVERY_STALL_SECONDS``)."""

    route_timeout_seconds: float = 5.0
    """How long a key lookup forwarded to the owning worker may take (then 504)."""

    faust_views: bool = False
    """Also serve Faust's ``/table`` and ``/router`` views (``KAIROS_WEB_FAUST_VIEWS``)."""

    @classmethod
    def from_settings(cls, settings: Any) -> WebSettings:
        """Take the web fields of an :class:`app.settings.Settings`."""
        defaults = cls()
        return cls(
            admin_token=settings.admin_token or None,
            read_token=settings.read_token or None,
            recovery_stall_seconds=float(
                getattr(settings, "recovery_stall_seconds", defaults.recovery_stall_seconds)
            ),
            route_timeout_seconds=float(
                getattr(settings, "route_timeout_seconds", defaults.route_timeout_seconds)
            ),
            faust_views=bool(getattr(settings, "web_faust_views", False)),
        )
