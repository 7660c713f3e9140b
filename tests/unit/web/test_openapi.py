"""The OpenAPI document describes exactly the routes that are served."""

from __future__ import annotations

from app.web import WebSettings, create_app
from app.web.openapi import document
from tests.unit.web.fake import FakeProvider

METHODS = {"get", "post", "put", "patch", "delete"}


def served_routes() -> set[tuple[str, str]]:
    app = create_app(FakeProvider(), WebSettings())
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":  # added by aiohttp for every GET
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        out.add((route.method.lower(), path))
    return out


def described_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in document()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described_and_every_description_is_served() -> None:
    served, described = served_routes(), described_routes()
    assert served - described == set(), "served but not in the OpenAPI document"
    assert described - served == set(), "in the OpenAPI document but not served"


async def test_served_document_is_the_document(client) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    assert await resp.json() == document()


def test_every_operation_declares_its_errors() -> None:
    for path, item in document()["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            if "{" in path or op.get("parameters"):
                assert codes & {"400", "404"}, (method, path)
            if op.get("security") == [{"bearer": []}]:
                assert {"401", "403"} <= codes, (method, path)
