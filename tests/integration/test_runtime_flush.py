"""State flushes on a real broker: a kill right after detections, and a revocation.

The detect agent acks a keyed-topic message only after the flush that persists its state
(per message, or every 0.5 s or 500 messages with ``KAIROS_COALESCE_STATE_WRITES``). These
tests check the at-least-once contract around that: nothing lost, duplicates share ids.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.rules import RuleRunner, load_rules_text
from cep.rules.backtest import run_backtest
from tests.integration.runtime_support import ABC_RULE, KairosWorker, produce_json, read_until
from tests.integration.test_runtime_recovery import setup

pytestmark = [pytest.mark.kafka]

#: Both write modes of at_least_once: coalesced and per message.
WRITE_MODES = pytest.mark.parametrize(
    "coalesce", ["true", "false"], ids=["coalesced", "per-message"]
)


def phases() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Phase 1: 40 keys stop after (a, b), 10 keys complete; phase 2 completes the 40."""
    first: list[dict[str, Any]] = []
    ts = 1_000
    for i in range(40):
        for kind in "AB":
            ts += 10
            first.append({"id": f"k{i}{kind}", "user": f"k{i}", "type": kind, "ts": ts})
    for j in range(10):
        for kind in "ABC":
            ts += 10
            first.append({"id": f"m{j}{kind}", "user": f"m{j}", "type": kind, "ts": ts})
    second = []
    for i in range(40):
        ts += 10
        second.append({"id": f"k{i}C", "user": f"k{i}", "type": "C", "ts": ts})
    return first, second


def expected(source: str, out: str, events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found: list[dict[str, Any]] = []
    run_backtest(
        RuleRunner(load_rules_text(ABC_RULE.format(source=source, out=out), "abc.yaml")),
        [orjson.dumps(e) for e in events],
        lambda d: found.append(d.to_cloudevent()),
        topic=source,
        flush=False,
    )
    return {e["id"]: e for e in found}


def check_at_least_once(records: list[Any], want: dict[str, dict[str, Any]]) -> None:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        event = orjson.loads(r.value)
        by_id[event["id"]].append(event)
    assert set(by_id) == set(want), (sorted(set(want) - set(by_id)), sorted(set(by_id) - set(want)))
    for eid, copies in by_id.items():
        assert all(c == want[eid] for c in copies), (eid, copies, want[eid])


@WRITE_MODES
def test_sigkill_between_flushes_loses_nothing(
    kafka_bootstrap: str, tmp_path: Path, coalesce: str
) -> None:
    env, source, out = setup(tmp_path, kafka_bootstrap)
    env["KAIROS_COALESCE_STATE_WRITES"] = coalesce
    first, second = phases()
    want = expected(source, out, first + second)
    assert len(want) == 50
    w1 = KairosWorker(
        kafka_bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d1")}, tmp_path / "w1.log"
    )
    try:
        w1.start()
        asyncio.run(produce_json(kafka_bootstrap, source, first, key="user"))
        # the offers of phase 1 are out as soon as detect applied their messages, before the
        # flush that writes the 40 partial matches (coalesced: up to 0.5 s later): kill now
        asyncio.run(read_until(kafka_bootstrap, out, lambda rs: len(rs) >= 10, settle=0))
    finally:
        w1.kill()
    w2 = KairosWorker(
        kafka_bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d2")}, tmp_path / "w2.log"
    )
    try:
        w2.start()
        asyncio.run(produce_json(kafka_bootstrap, source, second, key="user"))
        records = asyncio.run(
            read_until(
                kafka_bootstrap,
                out,
                lambda rs: {orjson.loads(r.value)["id"] for r in rs} >= set(want),
                timeout=90,
                settle=2.0,
            )
        )
        check_at_least_once(records, want)
    finally:
        w2.stop()


@WRITE_MODES
def test_revocation_flushes_and_the_new_owner_completes_the_matches(
    kafka_bootstrap: str, tmp_path: Path, coalesce: str
) -> None:
    env, source, out = setup(tmp_path, kafka_bootstrap)
    env["KAIROS_COALESCE_STATE_WRITES"] = coalesce
    first, second = phases()
    want = expected(source, out, first + second)
    workers = [
        KairosWorker(
            kafka_bootstrap,
            {**env, "KAIROS_DATA_DIR": str(tmp_path / f"d{i}")},
            tmp_path / f"w{i}.log",
        )
        for i in (1, 2)
    ]
    w1, w2 = workers
    try:
        w1.start()
        asyncio.run(produce_json(kafka_bootstrap, source, first, key="user"))
        w1.wait_until(
            lambda: (
                (w1.http_json("/api/rules") or {"rules": [{}]})["rules"][0]
                .get("counts", {})
                .get("events")
                == len(first)
            ),
            60,
            "phase 1 applied",
        )
        w2.start()  # the group rebalances: w1 flushes before its partitions move
        w1.wait_for_log('"msg":"state flushed on revocation"', 90)
        for w in workers:
            w.wait_until(
                lambda w=w: '"msg":"keyed partitions assigned"' in w.since_start(), 90, "assignment"
            )
        asyncio.run(produce_json(kafka_bootstrap, source, second, key="user"))
        records = asyncio.run(
            read_until(
                kafka_bootstrap,
                out,
                lambda rs: {orjson.loads(r.value)["id"] for r in rs} >= set(want),
                timeout=90,
                settle=2.0,
            )
        )
        check_at_least_once(records, want)
    finally:
        for w in workers:
            w.stop()
