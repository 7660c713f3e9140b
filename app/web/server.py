"""Mount the web view on an aiohttp application: Faust's web server, or a plain one.

install(faust_app, provider, WebSettings.from_settings(settings))   # in the worker
create_app(provider, WebSettings())                                # tests, tools
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from app.metrics import METRICS, KairosMetrics
from app.web.api import Api
from app.web.monitor import Monitor
from app.web.problems import problem_middleware
from app.web.provider import StateProvider
from app.web.routing import FaustKeyRouter, KeyRouter, LocalRouter
from app.web.settings import WebSettings

__all__ = ["ROUTES", "create_app", "install", "mount"]

#: (method, path, handler name): the whole surface, described by app/web/openapi.py.
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/", "index"),
    ("GET", "/static/{name}", "static"),
    ("GET", "/healthz", "healthz"),
    ("GET", "/readyz", "readyz"),
    ("GET", "/metrics", "metrics_text"),
    ("GET", "/api/openapi.json", "openapi"),
    ("GET", "/api/keys/{key}", "key"),
    ("GET", "/api/rules", "rules"),
    ("POST", "/api/rules", "apply_rule"),
    ("GET", "/api/rules/{name}", "rule"),
    ("DELETE", "/api/rules/{name}", "delete_rule"),
    ("GET", "/api/matches", "matches"),
    ("GET", "/api/stats", "stats"),
    ("GET", "/api/stream", "stream"),
)

_API_KEY = web.AppKey("kairos_api", Api)


def mount(
    web_app: web.Application,
    provider: StateProvider,
    settings: WebSettings,
    router: KeyRouter,
    metrics: KairosMetrics = METRICS,
) -> Api:
    """Add the middleware, the routes and the monitor task to ``web_app``."""
    monitor = Monitor(provider, metrics, stall_seconds=settings.recovery_stall_seconds)
    api = Api(provider, settings, router, monitor, metrics)
    web_app.middlewares.append(problem_middleware)
    for method, path, handler in ROUTES:
        web_app.router.add_route(method, path, getattr(api, handler), name=f"kairos-{handler}")
    web_app[_API_KEY] = api

    async def run_monitor(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(monitor.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    web_app.cleanup_ctx.append(run_monitor)

    async def end_streams(_: web.Application) -> None:
        api.close_streams()

    web_app.on_shutdown.append(end_streams)
    return api


def create_app(
    provider: StateProvider,
    settings: WebSettings | None = None,
    *,
    router: KeyRouter | None = None,
    metrics: KairosMetrics = METRICS,
) -> web.Application:
    """A stand-alone aiohttp application serving the web view (every key answered locally)."""
    web_app = web.Application()
    mount(web_app, provider, settings or WebSettings(), router or LocalRouter(), metrics)
    return web_app


def install(
    faust_app: Any,
    provider: StateProvider,
    settings: WebSettings,
    metrics: KairosMetrics = METRICS,
) -> Api:
    """Serve the web view from a Faust app's web server; call before the worker starts.

    Faust's own ``/`` views (statistics, production index) give way to the dashboard;
    its ``/table`` and ``/router`` views are kept only when ``settings.faust_views``.
    """
    from faust.web.base import BlueprintManager

    faust_web = faust_app.web
    builtin = []
    if settings.faust_views:
        builtin = [
            (prefix, bp)
            for prefix, bp in faust_web.default_blueprints
            if prefix in ("/router", "/table")
        ]
    faust_web.blueprints = BlueprintManager(builtin)
    router = FaustKeyRouter(faust_app, provider, timeout=settings.route_timeout_seconds)
    return mount(faust_web.web_app, provider, settings, router, metrics)
