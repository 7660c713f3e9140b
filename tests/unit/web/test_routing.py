"""Forwarding a key lookup to its owner (FaustKeyRouter), with two servers on loopback.

The Faust side is reduced to the three things the router uses: ``router.key_store``
(which worker owns the key), ``conf.canonical_url`` and ``http_client``. The real
thing runs in tests/integration/test_web_routing.py with two workers on the broker.
"""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from app.metrics import KairosMetrics
from app.web import WebSettings, create_app
from app.web.routing import FORWARDED_BY, SERVED_BY, FaustKeyRouter
from tests.unit.web.fake import FakeProvider
from tests.unit.web.test_api import problem


class Owners:
    """Stands in for ``app.router``: which worker URL owns which key."""

    def __init__(self) -> None:
        self.table: dict[str, str] = {}

    def key_store(self, table_name: str, key: str) -> URL:
        assert table_name == "kairos-state"
        return URL(self.table[key])  # KeyError: assignment unknown, like Faust's


class Worker:
    def __init__(self, owners: Owners, settings: WebSettings) -> None:
        self.provider = FakeProvider()
        self.faust = SimpleNamespace(
            router=owners, conf=SimpleNamespace(canonical_url=URL("http://unset")), http_client=None
        )
        router = FaustKeyRouter(self.faust, self.provider, timeout=2)
        app = create_app(self.provider, settings, router=router, metrics=KairosMetrics())
        self.client = TestClient(TestServer(app, host="127.0.0.1"))

    async def start(self) -> None:
        await self.client.start_server()
        self.url = str(self.client.make_url("/")).rstrip("/")
        self.faust.conf.canonical_url = URL(self.url)
        self.faust.http_client = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.faust.http_client.close()
        await self.client.close()


@pytest.fixture
async def pair():
    owners = Owners()
    settings = WebSettings(read_token="r")
    a, b = Worker(owners, settings), Worker(owners, settings)
    await a.start()
    await b.start()
    yield owners, a, b
    await a.close()
    await b.close()


AUTH = {"Authorization": "Bearer r"}


async def test_the_non_owner_returns_the_owners_answer(pair) -> None:
    owners, a, b = pair
    owners.table["P-1042"] = b.url
    b.provider.keys["P-1042"] = {"key": "P-1042", "rules": {}, "context": {"on": "b"}}
    resp = await a.client.get("/api/keys/P-1042", headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert resp.headers[SERVED_BY] == b.url
    assert (await resp.json())["context"] == {"on": "b"}
    # the owner answers directly too
    resp = await b.client.get("/api/keys/P-1042", headers=AUTH)
    assert resp.headers[SERVED_BY] == b.url


async def test_the_owners_errors_and_auth_pass_through(pair) -> None:
    owners, a, b = pair
    owners.table["ghost"] = b.url
    resp = await a.client.get("/api/keys/ghost", headers=AUTH)
    await problem(resp, 404)
    assert resp.headers[SERVED_BY] == b.url
    resp = await a.client.get("/api/keys/ghost", headers={"Authorization": "Bearer wrong"})
    await problem(resp, 401)  # refused before forwarding


async def test_a_forwarded_request_is_never_forwarded_again(pair) -> None:
    owners, a, b = pair
    owners.table["k"] = b.url
    a.provider.keys["k"] = {"key": "k", "rules": {}, "context": {"on": "a"}}
    # b is told by a that a owns it (a rebalance in flight): b answers itself, no ping-pong
    resp = await a.client.get("/api/keys/k", headers={**AUTH, FORWARDED_BY: b.url})
    assert resp.headers[SERVED_BY] == a.url


async def test_unknown_assignment_is_503_with_retry_after(pair) -> None:
    _, a, _ = pair
    resp = await a.client.get("/api/keys/nobody-knows", headers=AUTH)
    await problem(resp, 503)
    assert resp.headers["Retry-After"] == "2"


async def test_unreachable_owner_is_502(pair) -> None:
    owners, a, _ = pair
    owners.table["k"] = "http://127.0.0.1:9"  # discard port: nothing listens
    body = await problem(await a.client.get("/api/keys/k", headers=AUTH), 502)
    assert "127.0.0.1:9" in body["detail"]
