"""Fixtures of the web view's unit tests: a fake provider and a client factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer

from app.metrics import KairosMetrics
from app.web import WebSettings, create_app
from app.web.routing import KeyRouter
from tests.unit.web.fake import FakeProvider

ClientFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def metrics() -> KairosMetrics:
    return KairosMetrics()


@pytest.fixture
async def make_client(fake: FakeProvider, metrics: KairosMetrics) -> AsyncIterator[ClientFactory]:
    """``await make_client(WebSettings(...))``: a client of a fresh server on 127.0.0.1."""
    clients: list[TestClient] = []

    async def factory(
        settings: WebSettings | None = None, *, router: KeyRouter | None = None
    ) -> TestClient:
        app = create_app(fake, settings or WebSettings(), router=router, metrics=metrics)
        client = TestClient(TestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient:
    return await make_client()
