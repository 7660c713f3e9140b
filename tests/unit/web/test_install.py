"""Mounting on a Faust app's own aiohttp server (no broker needed: nothing is started)."""

from __future__ import annotations

import faust
import pytest

from app.metrics import KairosMetrics
from app.web import WebSettings, install
from tests.unit.web.fake import FakeProvider


def faust_app() -> faust.App:
    return faust.App("web-install-test", broker="kafka://127.0.0.1:1", autodiscover=False)


def served(app: faust.App) -> list[tuple[str, str]]:
    app.web.init_server()  # applies the blueprints, as the worker does when it starts
    out = []
    for route in app.web.web_app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        out.append((route.method, info.get("path") or info.get("formatter")))
    return out


@pytest.mark.parametrize("faust_views", [False, True])
def test_the_dashboard_owns_the_root_and_faust_views_are_opt_in(faust_views: bool) -> None:
    app = faust_app()
    install(app, FakeProvider(), WebSettings(faust_views=faust_views), KairosMetrics())
    routes = served(app)
    assert ("GET", "/") in routes and ("GET", "/api/keys/{key}") in routes
    faust_paths = {p for _, p in routes if p and p.startswith(("/table", "/router"))}
    assert bool(faust_paths) is faust_views
    # exactly one handler for GET / (Faust's own index and statistics pages are not mounted)
    assert routes.count(("GET", "/")) == 1
