"""The read API, probes, errors and the dashboard files, against the fake provider."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient

from app.web.problems import PROBLEM_JSON
from app.web.routing import SERVED_BY
from tests.unit.web.fake import FakeProvider, detection


async def problem(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json(content_type=PROBLEM_JSON)
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["detail"]
    return body


async def test_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_readyz_follows_the_provider(client: TestClient, fake: FakeProvider) -> None:
    resp = await client.get("/readyz")
    assert (resp.status, await resp.json()) == (200, {"status": "ready"})
    fake.is_ready = (False, "recovering table kairos-state: 3 of 8 partitions")
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "starting"
    assert body["reason"] == "recovering table kairos-state: 3 of 8 partitions"


async def test_key_state_and_who_served_it(client: TestClient, fake: FakeProvider) -> None:
    fake.keys["P-1042"] = {
        "key": "P-1042",
        "rules": {"rebooking-offer": {"partial_matches": [{"stage": "delayed", "events": {}}]}},
        "context": {"tier": "gold"},
        "recent": [],
    }
    resp = await client.get("/api/keys/P-1042")
    assert resp.status == 200
    assert resp.headers[SERVED_BY] == "local"
    assert (await resp.json())["rules"]["rebooking-offer"]["partial_matches"][0][
        "stage"
    ] == "delayed"


async def test_key_with_reserved_characters(client: TestClient, fake: FakeProvider) -> None:
    fake.keys["a b/ü"] = {"key": "a b/ü", "rules": {}}
    resp = await client.get("/api/keys/a%20b%2F%C3%BC")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["key"] == "a b/ü"


async def test_unknown_key_is_404(client: TestClient) -> None:
    body = await problem(await client.get("/api/keys/nobody"), 404)
    assert "'nobody'" in body["detail"]


async def test_unknown_key_while_recovering_is_503_not_404(
    client: TestClient, fake: FakeProvider
) -> None:
    fake.is_ready = (False, "recovering tables from their changelogs")
    resp = await client.get("/api/keys/nobody")
    body = await problem(resp, 503)
    assert "recovering tables" in body["detail"]
    assert resp.headers["Retry-After"] == "2"
    fake.is_ready = (True, "")
    await problem(await client.get("/api/keys/nobody"), 404)


async def test_key_found_while_recovering_says_it_may_be_incomplete(
    client: TestClient, fake: FakeProvider
) -> None:
    fake.keys["P-7"] = {"key": "P-7", "rules": {}, "context": {}, "recent": []}
    fake.is_ready = (False, "consumer group rebalancing")
    resp = await client.get("/api/keys/P-7")
    assert resp.status == 200
    assert (await resp.json())["recovering"] == "consumer group rebalancing"
    fake.is_ready = (True, "")
    assert "recovering" not in await (await client.get("/api/keys/P-7")).json()


async def test_overlong_key_is_400(client: TestClient) -> None:
    body = await problem(await client.get("/api/keys/" + "k" * 513), 400)
    assert body["invalid_params"][0]["name"] == "key"


async def test_rules(client: TestClient, fake: FakeProvider) -> None:
    fake.add_rule("cart-abandoned", 2)
    resp = await client.get("/api/rules")
    assert [r["name"] for r in (await resp.json())["rules"]] == ["cart-abandoned"]
    resp = await client.get("/api/rules/cart-abandoned")
    assert (await resp.json())["version"] == 2
    await problem(await client.get("/api/rules/nope"), 404)


async def test_matches_filters(client: TestClient, fake: FakeProvider) -> None:
    fake.publish(detection("a", "k1", "match", 1))
    fake.publish(detection("b", "k2", "timeout", 2))
    fake.publish(detection("a", "k3", "timeout", 3))
    body = await (await client.get("/api/matches?rule=a&kind=timeout")).json()
    assert [d["id"] for d in body["detections"]] == ["a-k3-3"]
    body = await (await client.get("/api/matches?limit=2")).json()
    assert [d["id"] for d in body["detections"]] == ["a-k3-3", "b-k2-2"]


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("kind=late", "kind"),
        ("rule=Not%20A%20Rule", "rule"),
    ],
)
async def test_bad_parameters_are_400_with_the_reason(
    client: TestClient, query: str, name: str
) -> None:
    body = await problem(await client.get(f"/api/matches?{query}"), 400)
    assert body["invalid_params"][0]["name"] == name
    assert name in body["detail"]


async def test_stats_series(client: TestClient, metrics) -> None:
    metrics.events_in("events", 10)
    resp = await client.get("/api/stats?seconds=60")
    body = await resp.json()
    assert body["totals"]["events"] == 10
    assert isinstance(body["series"], list)
    await problem(await client.get("/api/stats?seconds=0"), 400)


async def test_stream_delivers_detections_as_they_happen(
    client: TestClient, fake: FakeProvider
) -> None:
    resp = await client.get("/api/stream?rule=a")
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    hello = await _next_event(resp)
    assert hello[0] == "hello"
    fake.publish(detection("b", "k1"))  # filtered out
    fake.publish(detection("a", "k2"))
    name, data = await _next_event(resp)
    assert name == "detection"
    assert '"subject":"k2"' in data
    resp.close()
    await _wait_for(lambda: not fake.subscribers)


async def test_stream_filters_by_kind(client: TestClient, fake: FakeProvider) -> None:
    resp = await client.get("/api/stream?kind=alert")
    assert (await _next_event(resp))[0] == "hello"
    fake.publish(detection("a", "offered", "match"))  # an offer
    fake.publish(detection("a", "alerted", "timeout"))  # an alert
    assert (await _next_event(resp))[1].count('"subject":"alerted"') == 1
    resp.close()


async def _next_event(resp) -> tuple[str, str]:
    name, data = "message", ""
    while True:
        line = (await asyncio.wait_for(resp.content.readline(), 5)).decode().rstrip("\r\n")
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            return name, data


async def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_unknown_path_and_wrong_method_are_problems(client: TestClient) -> None:
    await problem(await client.get("/api/nothing-here"), 404)
    resp = await client.put("/api/rules")
    body = await problem(resp, 405)
    assert "GET" in resp.headers["Allow"] and "POST" in resp.headers["Allow"]
    assert body["instance"] == "/api/rules"


async def test_a_failing_provider_gives_a_500_problem_without_internals(
    client: TestClient, fake: FakeProvider
) -> None:
    async def broken(key: str):
        raise RuntimeError("secret internals")

    fake.key_state = broken  # type: ignore[method-assign]
    resp = await client.get("/api/keys/x")
    body = await problem(resp, 500)
    assert "secret" not in await resp.text()
    assert "log" in body["detail"]


async def test_metrics_endpoint(client: TestClient, metrics) -> None:
    metrics.detections("cart-abandoned", matches=3)
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert 'kairos_matches_total{rule="cart-abandoned"} 3.0' in await resp.text()


async def test_dashboard_files(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "<title>Kairos" in await resp.text()
    for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        resp = await client.get(f"/static/{name}")
        assert (resp.status, resp.content_type) == (200, ctype)
    await problem(await client.get("/static/..%2Fapi.py"), 404)
    await problem(await client.get("/static/index.html"), 404)


async def test_open_streams_do_not_hold_up_shutdown(fake: FakeProvider) -> None:
    from aiohttp import ClientSession, web

    from app.metrics import KairosMetrics
    from app.web import WebSettings, create_app

    runner = web.AppRunner(create_app(fake, WebSettings(), metrics=KairosMetrics()))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    async with ClientSession() as http:
        resp = await http.get(f"http://127.0.0.1:{port}/api/stream")
        assert (await _next_event(resp))[0] == "hello"
        # aiohttp waits up to 60 s for running handlers; the stream must end at once instead
        await asyncio.wait_for(runner.cleanup(), 10)
        assert not fake.subscribers
        resp.close()
