"""Two workers share the partitions: ask either one about any key, get the owner's answer."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import aiohttp
import pytest

from agents.wire import partition_for
from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import KairosWorker, produce_json

pytestmark = pytest.mark.kafka

SUFFIX = uuid.uuid4().hex[:8]
SOURCE = f"route-src-{SUFFIX}"
PARTITIONS = 4


def keys_on_every_partition(per_partition: int = 2, prefix: str = "k") -> list[str]:
    """Keys covering every partition of the keyed topic, so both workers own some."""
    chosen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    n = 0
    while any(len(v) < per_partition for v in chosen.values()):
        key = f"{prefix}{n}-{SUFFIX}"
        bucket = chosen[partition_for(key, PARTITIONS)]
        if len(bucket) < per_partition:
            bucket.append(key)
        n += 1
    return [k for v in chosen.values() for k in v]


KEYS = keys_on_every_partition()

RULE = f"""
name: route-pair
version: 1
source: {SOURCE}
key: user
id: id
within: 1h
stages:
  - name: opened
    where: event.type == 'Open'
  - name: paid
    after: relaxed
    where: event.type == 'Pay'
emit: {{kind: offer, topic: route-offers-{SUFFIX}, data: {{}}}}
"""


@pytest.fixture(scope="module")
def workers(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KairosWorker, KairosWorker]]:
    tmp = tmp_path_factory.mktemp("web-routing")
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "pair.yaml").write_text(RULE)
    asyncio.run(create_topic(kafka_bootstrap, SOURCE, partitions=2))
    env = {
        "KAIROS_APP_ID": f"route-{SUFFIX}",
        "KAIROS_RULES_DIR": str(rules),
        "KAIROS_RULES_TOPIC": f"route-rules-{SUFFIX}",
        "KAIROS_RULES_STATUS_TOPIC": f"route-status-{SUFFIX}",
        "KAIROS_DLQ_TOPIC": f"route-dlq-{SUFFIX}",
        "KAIROS_PARTITIONS": str(PARTITIONS),
        "KAIROS_STANDBY_REPLICAS": "0",
        "KAIROS_READ_TOKEN": "route-read",
    }
    a = KairosWorker(kafka_bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp / "a")}, tmp / "a.log")
    b = KairosWorker(kafka_bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp / "b")}, tmp / "b.log")
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        b.stop()
        a.stop()


def lookup(worker: KairosWorker, key: str) -> tuple[int, str, dict]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{worker.port}/api/keys/{key}",
        headers={"Authorization": "Bearer route-read"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("X-Kairos-Served-By", ""), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("X-Kairos-Served-By", ""), json.loads(err.read())


def url(worker: KairosWorker) -> str:
    return f"http://127.0.0.1:{worker.port}"


def both_assigned(a: KairosWorker, b: KairosWorker) -> bool:
    """Every key answered 200 by both workers, each time by the same owner."""
    for key in KEYS:
        (sa, oa, _), (sb, ob, _) = lookup(a, key), lookup(b, key)
        if sa != 200 or sb != 200 or oa != ob:
            return False
    return True


async def test_any_worker_answers_for_any_key(workers: tuple[KairosWorker, KairosWorker]) -> None:
    a, b = workers
    events = [{"id": f"{k}-1", "user": k, "type": "Open"} for k in KEYS]
    await produce_json(a.bootstrap, SOURCE, events, key="user")

    deadline = time.monotonic() + 90
    while not both_assigned(a, b):
        assert time.monotonic() < deadline, (
            "the two workers never agreed on the owners of every key:\n"
            + "\n".join(f"{k}: {lookup(a, k)[:2]} / {lookup(b, k)[:2]}" for k in KEYS)
        )
        await asyncio.sleep(0.5)

    owners = {}
    for key in KEYS:
        (_, owner_a, body_a), (_, owner_b, body_b) = lookup(a, key), lookup(b, key)
        assert owner_a == owner_b in (url(a), url(b))
        assert body_a == body_b
        assert body_a["key"] == key and "route-pair" in body_a["rules"]
        owners[key] = owner_a
    # Only the owner holds the key's state, so the non-owner's 200 is the owner's answer;
    # both workers own some keys, so forwarding was exercised in both directions.
    assert set(owners.values()) == {url(a), url(b)}, owners


def test_the_owner_is_the_worker_holding_the_partition(
    workers: tuple[KairosWorker, KairosWorker],
) -> None:
    """The owner reported is the worker whose own answer for the key comes from itself."""
    a, b = workers
    for key in KEYS:
        _, owner, _ = lookup(a, key)
        owner_worker = a if owner == url(a) else b
        other = b if owner_worker is a else a
        assert lookup(owner_worker, key)[1] == url(owner_worker)
        assert lookup(other, key)[1] == url(owner_worker)
        # unauthenticated requests are refused by the worker asked, not forwarded
        req = urllib.request.Request(f"{url(other)}/api/keys/{key}")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 401


def matches(worker: KairosWorker) -> list[dict]:
    req = urllib.request.Request(
        f"{url(worker)}/api/matches?rule=route-pair&kind=offer&limit=1000",
        headers={"Authorization": "Bearer route-read"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())["detections"]


async def _sse(resp: aiohttp.ClientResponse) -> tuple[str, str]:
    name, data = "message", ""
    while True:
        line = (await resp.content.readline()).decode().rstrip("\r\n")
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            return name, data


async def _offers(resp: aiohttp.ClientResponse, count: int) -> dict[str, dict]:
    """The next ``count`` detections of an open stream, by key."""
    got: dict[str, dict] = {}
    while len(got) < count:
        name, data = await _sse(resp)
        if name == "detection":
            event = json.loads(data)
            got[event["subject"]] = event
    return got


async def test_every_worker_shows_the_detections_of_the_whole_cluster(
    workers: tuple[KairosWorker, KairosWorker],
) -> None:
    """Each worker detects only for the keys it owns; both show all of them, recent and live."""
    a, b = workers
    warm = f"warm-{SUFFIX}"
    await produce_json(
        a.bootstrap,
        SOURCE,
        [{"id": f"{warm}-{t}", "user": warm, "type": t} for t in ("Open", "Pay")],
        key="user",
    )
    # once both show the first offer, both feeds follow the offers topic
    deadline = time.monotonic() + 90
    while not all(any(e["subject"] == warm for e in matches(w)) for w in (a, b)):
        assert time.monotonic() < deadline, "the first offer never showed on both workers"
        await asyncio.sleep(0.5)

    keys = keys_on_every_partition(prefix="pair")
    events = [{"id": f"{k}-{t}", "user": k, "type": t} for t in ("Open", "Pay") for k in keys]
    query = "?rule=route-pair&kind=offer&access_token=route-read"
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{url(a)}/api/stream{query}") as stream_a,
        http.get(f"{url(b)}/api/stream{query}") as stream_b,
    ):
        assert stream_a.status == stream_b.status == 200
        for stream, worker in ((stream_a, a), (stream_b, b)):
            name, data = await asyncio.wait_for(_sse(stream), 30)
            assert (name, json.loads(data)) == ("hello", {"worker": url(worker)})
        await produce_json(a.bootstrap, SOURCE, events, key="user")
        live_a, live_b = await asyncio.wait_for(
            asyncio.gather(_offers(stream_a, len(keys)), _offers(stream_b, len(keys))), 60
        )

    assert set(live_a) == set(live_b) == set(keys)
    assert live_a == live_b
    # the offers were made by both workers: each key's owner made its offer
    owners = {key: lookup(a, key)[1] for key in keys}
    assert set(owners.values()) == {url(a), url(b)}, owners
    for worker in (a, b):
        recent = {e["subject"]: e for e in matches(worker)}
        assert {k: recent.get(k) for k in keys} == live_a
