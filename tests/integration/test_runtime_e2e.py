"""One ``kairos worker`` against the real broker: exact CloudEvents, runtime == backtest, DLQ,
processing-time timeouts, hot swap of rules.

The worker starts once for the module with four rules (each on its own source topic) from a
rules directory; every test reads only the keys it produced.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from cep.rules import RuleRunner, load_rules_text
from cep.rules.backtest import run_backtest
from cep.rules.detection import ID_NAMESPACE
from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import (
    KairosWorker,
    cloudevents,
    produce_json,
    publish_rule,
    read_until,
)

pytestmark = pytest.mark.kafka

SUFFIX = uuid.uuid4().hex[:8]
T = {
    name: f"{name}-{SUFFIX}"
    for name in ("ab", "bt", "idle", "swap", "offers", "alerts", "bt-out", "swap-out")
}
T |= {"rules": f"rules-{SUFFIX}", "status": f"status-{SUFFIX}", "dlq": f"dlq-{SUFFIX}"}

AB = f"""
name: ab
version: 1
source: {T["ab"]}
key: user
id: id
time: ts
within: 1h
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
emit:
  kind: offer
  topic: {T["offers"]}
  data: {{first: "stages.a[0].id", amount: "stages.b[0].amount * 2"}}
"""

BT = f"""
name: bt
version: 1
source: {T["bt"]}
key: user
id: id
time: ts
max_out_of_orderness: 10m
within: 1h
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
    times: {{min: 1, max: 2}}
  - name: c
    after: relaxed
    where: event.type == 'C'
emit: {{kind: offer, topic: {T["bt-out"]}, data: {{a: "stages.a[0].id"}}}}
on_timeout: {{kind: alert, topic: {T["bt-out"]}, data: {{a: "stages.a[0].id"}}}}
"""

IDLE = f"""
name: idle
version: 1
source: {T["idle"]}
key: user
id: id
within: 1s
stages:
  - name: carted
    where: event.type == 'Cart'
  - name: ordered
    after: relaxed
    negate: true
    where: event.type == 'Order'
emit: {{kind: alert, topic: {T["alerts"]}, data: {{cart: "stages.carted[0].id"}}}}
"""

SWAP = """
name: swap
version: {version}
source: {source}
key: user
id: id
time: ts
stages:
  - name: hit
    where: {where}
emit: {{kind: offer, topic: {out}, data: {{v: "{version}"}}}}
"""


def swap_rule(version: int, where: str) -> str:
    return SWAP.format(version=version, where=where, source=T["swap"], out=T["swap-out"])


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KairosWorker]:
    tmp = tmp_path_factory.mktemp("runtime-e2e")
    rules = tmp / "rules"
    rules.mkdir()
    for name, text in {
        "ab": AB,
        "bt": BT,
        "idle": IDLE,
        "swap": swap_rule(1, "event.type == 'A'"),
    }.items():
        (rules / f"{name}.yaml").write_text(text)

    async def topics() -> None:
        for name in ("ab", "bt", "idle", "swap"):
            await create_topic(kafka_bootstrap, T[name], partitions=1)

    asyncio.run(topics())
    w = KairosWorker(
        kafka_bootstrap,
        {
            "KAIROS_APP_ID": f"e2e-{SUFFIX}",
            "KAIROS_RULES_DIR": str(rules),
            "KAIROS_RULES_TOPIC": T["rules"],
            "KAIROS_RULES_STATUS_TOPIC": T["status"],
            "KAIROS_DLQ_TOPIC": T["dlq"],
            "KAIROS_PARTITIONS": "4",
            "KAIROS_STANDBY_REPLICAS": "0",
            "KAIROS_DATA_DIR": str(tmp / "data"),
        },
        tmp / "worker.log",
    )
    try:
        yield w.start()
    finally:
        w.stop()


def expected_id(rule: str, version: int, key: str, kind: str, stages: dict[str, list[str]]) -> str:
    """The documented recipe: uuid5 over [rule, version, key, kind, stages] (sorted JSON)."""
    canon = orjson.dumps([rule, version, key, kind, stages], option=orjson.OPT_SORT_KEYS)
    return str(uuid.uuid5(ID_NAMESPACE, canon.decode()))


async def test_exact_cloudevents(worker: KairosWorker, kafka_bootstrap: str) -> None:
    events = [
        {"id": "e1", "user": "p1", "type": "A", "ts": 1_000},
        {"id": "e2", "user": "p2", "type": "A", "ts": 2_000},
        {"id": "e3", "user": "p1", "type": "C", "ts": 3_000},
        {"id": "e4", "user": "p3", "type": "B", "ts": 4_000},
        {"id": "e5", "user": "p1", "type": "B", "ts": 5_000, "amount": 21},
        {"id": "e6", "user": "p3", "type": "A", "ts": 6_000},
    ]
    await produce_json(kafka_bootstrap, T["ab"], events)
    mine = {"p1", "p2", "p3"}
    records = await read_until(
        kafka_bootstrap,
        T["offers"],
        lambda rs: any(orjson.loads(r.value)["subject"] == "p1" for r in rs),
    )
    got = [e for e in cloudevents(records) if e["subject"] in mine]
    assert got == [
        {
            "specversion": "1.0",
            "id": expected_id("ab", 1, "p1", "match", {"a": ["e1"], "b": ["e5"]}),
            "source": "/kairos/rules/ab/v1",
            "type": "kairos.offer",
            "subject": "p1",
            "datacontenttype": "application/json",
            "data": {"first": "e1", "amount": 42},
            "kairoskind": "match",
            "time": "1970-01-01T00:00:05.000Z",
        }
    ]
    assert [r.key for r in records if orjson.loads(r.value)["subject"] in mine] == [b"p1"]
    state = worker.http_json("/api/keys/p2")
    assert state["rules"]["ab"]["version"] == 1
    assert worker.http_json("/api/keys/p1")["recent"] == got


def scripted_events(seed: int = 7, n: int = 400) -> list[dict[str, Any]]:
    """Seeded events for 25 users; a few arrive up to 15 minutes late (some beyond the 10m bound)."""
    rnd = random.Random(seed)
    ts = 1_700_000_000_000
    out = []
    for i in range(n):
        ts += rnd.randint(0, 120_000)
        t = ts - (rnd.randint(0, 900_000) if rnd.random() < 0.05 else 0)
        out.append(
            {"id": f"b{i}", "user": f"u{rnd.randint(1, 25)}", "type": rnd.choice("AABBC"), "ts": t}
        )
    return out


async def test_runtime_output_equals_backtest(worker: KairosWorker, kafka_bootstrap: str) -> None:
    events = scripted_events()
    expected: list[dict[str, Any]] = []
    late = 0

    def collect(det: Any) -> None:
        nonlocal late
        if det.kind == "late":
            late += 1
        else:
            expected.append(det.to_cloudevent())

    runner = RuleRunner(load_rules_from_text(BT))
    lines = [orjson.dumps(e) for e in events]
    run_backtest(runner, lines, collect, topic=T["bt"], flush=False)
    assert expected and late, "the script must produce matches, timeouts and late events"
    assert {e["kairoskind"] for e in expected} == {"match", "timeout"}

    await produce_json(kafka_bootstrap, T["bt"], events, key="user")
    want = {e["id"] for e in expected}
    records = await read_until(
        kafka_bootstrap,
        T["bt-out"],
        lambda rs: {orjson.loads(r.value)["id"] for r in rs} >= want,
        timeout=60,
        settle=2.0,
    )
    got = cloudevents(records)
    assert len(got) == len(expected)  # no duplicates, nothing extra
    assert sorted(got, key=lambda e: e["id"]) == sorted(expected, key=lambda e: e["id"])

    # Every keyed partition has heard from all source partitions of the rule (events or
    # ticks), so each holds the rule's watermark from going back, and saves that clock with
    # its progress record (agents/detect.py, Detector._hold).
    def floors(rs: list[Any]) -> dict[bytes, Any]:
        last = {r.key: r.value for r in rs if r.key and r.key.startswith(b"\x00p")}
        return {k: orjson.loads(v).get("wm", {}).get("bt") for k, v in last.items() if v}

    changelog = f"e2e-{SUFFIX}-state-changelog"
    progress = await read_until(
        kafka_bootstrap,
        changelog,
        lambda rs: len(held := floors(rs)) == 4 and None not in held.values(),
        timeout=30,
        settle=0,
    )
    times = [e["ts"] for e in events]
    assert all(min(times) <= wm <= max(times) for wm in floors(progress).values())


def load_rules_from_text(text: str) -> list[Any]:
    return load_rules_text(text, "rule.yaml")


async def test_unusable_input_goes_to_the_dlq_and_the_stream_goes_on(
    worker: KairosWorker, kafka_bootstrap: str
) -> None:
    bad = [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"id": "x1", "type": "A", "ts": 1}',
        b'{"id": "x2", "user": "d1", "type": "A"}',
        b'{"id": "x3", "user": "d1", "type": "A", "ts": "yesterday"}',
        b'{"id": "x4", "user": {"nested": 1}, "type": "A", "ts": 1}',
    ]
    good = [
        {"id": "d1-a", "user": "d1", "type": "A", "ts": 10_000},
        {"id": "d1-b", "user": "d1", "type": "B", "ts": 11_000, "amount": 1},
    ]
    await produce_json(kafka_bootstrap, T["ab"], [*bad[:4], good[0], *bad[4:], good[1]])
    dead = await read_until(kafka_bootstrap, T["dlq"], lambda rs: len(rs) >= len(bad))
    # the DLQ has several partitions: restore the source order from the offset header
    dead.sort(key=lambda r: int(dict(r.headers)["kairos.source.offset"]))
    assert [r.value for r in dead] == bad  # original bytes
    reasons = [dict(r.headers)["kairos.dlq.reason"].decode() for r in dead]
    assert reasons == [
        "malformed-json",
        "not-utf8",
        "not-an-object",
        "missing-key",
        "missing-time",
        "invalid-time",
        "invalid-key",
    ]
    for r in dead:
        h = dict(r.headers)
        assert h["kairos.source.topic"] == T["ab"].encode()
        assert h["kairos.source.partition"] == b"0"
        assert int(h["kairos.source.offset"]) >= 0
    offers = await read_until(
        kafka_bootstrap,
        T["offers"],
        lambda rs: any(orjson.loads(r.value)["subject"] == "d1" for r in rs),
    )
    assert [e["data"] for e in cloudevents(offers) if e["subject"] == "d1"] == [
        {"first": "d1-a", "amount": 2}
    ]


async def test_processing_time_timeout_fires_for_an_idle_key(
    worker: KairosWorker, kafka_bootstrap: str
) -> None:
    await produce_json(
        kafka_bootstrap,
        T["idle"],
        [
            {"id": "c1", "user": "idle-1", "type": "Cart"},
            {"id": "c2", "user": "busy-1", "type": "Cart"},
            {"id": "o2", "user": "busy-1", "type": "Order"},
        ],
    )
    # idle-1 gets no further event: only the ticks can fire its 1 s absence window
    records = await read_until(
        kafka_bootstrap,
        T["alerts"],
        lambda rs: any(orjson.loads(r.value)["subject"] == "idle-1" for r in rs),
        timeout=20,
        settle=2.5,
    )
    alerts = cloudevents(records)
    assert [(e["subject"], e["data"], e["kairoskind"]) for e in alerts] == [
        ("idle-1", {"cart": "c1"}, "match")
    ]


async def test_hot_swap_applies_v2_and_rejects_invalid_v3(
    worker: KairosWorker, kafka_bootstrap: str
) -> None:
    async def offers_for(user: str) -> list[dict[str, Any]]:
        rs = await read_until(
            kafka_bootstrap,
            T["swap-out"],
            lambda rs: any(orjson.loads(r.value)["subject"] == user for r in rs),
            settle=0.5,
        )
        return [e for e in cloudevents(rs) if e["subject"] == user]

    async def verdict(version: int) -> dict[str, Any]:
        rs = await read_until(
            kafka_bootstrap,
            T["status"],
            lambda rs: any(orjson.loads(r.value).get("version") == version for r in rs),
            settle=0.2,
        )
        (v,) = [
            orjson.loads(r.value) for r in rs if orjson.loads(r.value).get("version") == version
        ]
        return v

    await produce_json(
        kafka_bootstrap, T["swap"], [{"id": "s1", "user": "s1", "type": "A", "ts": 1}]
    )
    assert [e["source"] for e in await offers_for("s1")] == ["/kairos/rules/swap/v1"]

    await publish_rule(kafka_bootstrap, T["rules"], "swap", swap_rule(2, "event.type == 'B'"))
    assert (await verdict(2))["status"] == "applied"
    await produce_json(
        kafka_bootstrap,
        T["swap"],
        [
            {"id": "s2", "user": "s2", "type": "A", "ts": 2},  # v1's condition: no longer matches
            {"id": "s3", "user": "s3", "type": "B", "ts": 3},
        ],
    )
    assert [e["source"] for e in await offers_for("s3")] == ["/kairos/rules/swap/v2"]

    await publish_rule(kafka_bootstrap, T["rules"], "swap", swap_rule(3, "event.type ==== 'C'"))
    rejected = await verdict(3)
    assert rejected["status"] == "rejected"
    assert rejected["errors"] and all("stages[0].where" in e for e in rejected["errors"])
    assert '"msg":"rule rejected"' in worker.since_start()
    await produce_json(
        kafka_bootstrap, T["swap"], [{"id": "s4", "user": "s4", "type": "B", "ts": 4}]
    )
    assert [e["source"] for e in await offers_for("s4")] == ["/kairos/rules/swap/v2"]
    assert not any(e["subject"] == "s2" for e in await offers_for("s4"))
    rules = {r["name"]: r for r in worker.http_json("/api/rules")["rules"]}
    assert rules["swap"]["version"] == 2
    assert "stages[0].where" in rules["swap"]["last_error"]


def test_rule_texts_are_valid() -> None:
    """A typo in the rules above would otherwise fail every test confusingly."""
    for text in (AB, BT, IDLE, swap_rule(1, "event.type == 'A'")):
        assert len(load_rules_from_text(text)) == 1
