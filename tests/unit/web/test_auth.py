"""Admin token for rule changes (off when unset), optional read token."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from app.web import WebSettings
from tests.unit.web.conftest import ClientFactory
from tests.unit.web.fake import FakeProvider
from tests.unit.web.test_api import problem

RULE = "name: cart-abandoned\nversion: 3\n"
ADMIN = {"Authorization": "Bearer s3cret-admin"}


@pytest.fixture
async def admin_client(make_client: ClientFactory) -> TestClient:
    return await make_client(WebSettings(admin_token="s3cret-admin"))


async def test_rule_changes_are_disabled_without_an_admin_token(
    client: TestClient, fake: FakeProvider
) -> None:
    fake.add_rule("x")
    for resp in (
        await client.post("/api/rules", data=RULE, headers=ADMIN),
        await client.delete("/api/rules/x", headers=ADMIN),
    ):
        body = await problem(resp, 403)
        assert "KAIROS_ADMIN_TOKEN" in body["detail"]
    assert fake.applied == [] and "x" in fake.rule_list


async def test_missing_or_wrong_admin_token_is_401(admin_client: TestClient) -> None:
    resp = await admin_client.post("/api/rules", data=RULE)
    await problem(resp, 401)
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await admin_client.post("/api/rules", data=RULE, headers={"Authorization": "Bearer no"})
    await problem(resp, 401)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


async def test_apply_and_delete_a_rule(admin_client: TestClient, fake: FakeProvider) -> None:
    resp = await admin_client.post(
        "/api/rules?filename=cart.yaml",
        data=RULE,
        headers={**ADMIN, "Content-Type": "application/yaml"},
    )
    assert resp.status == 201, await resp.text()
    assert resp.headers["Location"] == "/api/rules/cart-abandoned"
    assert (await resp.json())["version"] == 3
    assert fake.applied == [("cart.yaml", RULE)]
    resp = await admin_client.delete("/api/rules/cart-abandoned", headers=ADMIN)
    assert resp.status == 204
    await problem(await admin_client.delete("/api/rules/cart-abandoned", headers=ADMIN), 404)


async def test_invalid_rule_is_422_with_every_issue(admin_client: TestClient) -> None:
    resp = await admin_client.post(
        "/api/rules?filename=bad.yaml", data="name: Bad Name\nversion: x\n", headers=ADMIN
    )
    body = await problem(resp, 422)
    assert [(e["file"], e["path"]) for e in body["errors"]] == [
        ("bad.yaml", "name"),
        ("bad.yaml", "version"),
    ]


@pytest.mark.parametrize(
    ("query", "data"),
    [("", b""), ("", b"   \n"), ("", b"\xff\xfe"), ("?filename=../x.yaml", b"name: a")],
)
async def test_bad_rule_requests_are_400(admin_client: TestClient, query: str, data: bytes) -> None:
    await problem(await admin_client.post(f"/api/rules{query}", data=data, headers=ADMIN), 400)


async def test_read_token(make_client: ClientFactory, fake: FakeProvider) -> None:
    client = await make_client(WebSettings(read_token="r3ad", admin_token="s3cret-admin"))
    await problem(await client.get("/api/rules"), 401)
    await problem(await client.get("/api/rules", headers={"Authorization": "Bearer x"}), 401)
    for token in ("r3ad", "s3cret-admin"):
        resp = await client.get("/api/rules", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 200
    # probes, metrics and the page stay open; the stream takes the token as a query parameter
    for path in ("/healthz", "/readyz", "/metrics", "/", "/static/app.js"):
        assert (await client.get(path)).status == 200, path
    await problem(await client.get("/api/stream"), 401)
    resp = await client.get("/api/stream?access_token=r3ad")
    assert resp.status == 200
    resp.close()
    # the read token does not allow rule changes
    resp = await client.post("/api/rules", data=RULE, headers={"Authorization": "Bearer r3ad"})
    await problem(resp, 401)


async def test_a_rule_file_over_1_mib_is_413(admin_client: TestClient) -> None:
    body = await problem(
        await admin_client.post("/api/rules", data=b"#" * (1024 * 1024 + 1), headers=ADMIN), 413
    )
    assert "too large" in body["detail"].lower()
