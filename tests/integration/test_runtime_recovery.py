"""Crash recovery from the changelog, and two workers sharing the partitions."""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from cep.rules import RuleRunner, load_rules_text
from cep.rules.backtest import run_backtest
from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import (
    ABC_RULE,
    KairosWorker,
    cloudevents,
    produce_json,
    read_until,
)

pytestmark = pytest.mark.kafka


def setup(tmp: Path, bootstrap: str, source_partitions: int = 1) -> tuple[dict[str, str], str, str]:
    suffix = uuid.uuid4().hex[:8]
    source, out = f"src-{suffix}", f"out-{suffix}"
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "abc.yaml").write_text(ABC_RULE.format(source=source, out=out))
    asyncio.run(create_topic(bootstrap, source, partitions=source_partitions))
    env = {
        "KAIROS_APP_ID": f"rec-{suffix}",
        "KAIROS_RULES_DIR": str(rules),
        "KAIROS_RULES_TOPIC": f"rules-{suffix}",
        "KAIROS_RULES_STATUS_TOPIC": f"status-{suffix}",
        "KAIROS_DLQ_TOPIC": f"dlq-{suffix}",
        "KAIROS_PARTITIONS": "4",
        "KAIROS_STANDBY_REPLICAS": "0",
    }
    return env, source, out


def test_sigkill_then_a_fresh_worker_completes_the_partial_match_from_the_changelog(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env, source, out = setup(tmp_path, kafka_bootstrap)
    first = KairosWorker(
        kafka_bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d1")}, tmp_path / "w1.log"
    )
    try:
        first.start()
        asyncio.run(
            produce_json(
                kafka_bootstrap,
                source,
                [
                    {"id": "e1", "user": "k1", "type": "A", "ts": 1_000},
                    {"id": "e2", "user": "k1", "type": "B", "ts": 2_000},
                ],
            )
        )
        # the partial match (a, b) is in the changelog once the key's state record is there
        changelog = f"{env['KAIROS_APP_ID']}-state-changelog"
        asyncio.run(
            read_until(
                kafka_bootstrap, changelog, lambda rs: any(r.key == b"k1" for r in rs), settle=0
            )
        )
        partial = first.http_json("/api/keys/k1")
        assert partial is not None and "abc" in partial["rules"]
    finally:
        first.kill()  # SIGKILL: no commit, no leave-group, nothing flushed

    # a new worker with an empty local store (memory://, its own data dir)
    second = KairosWorker(
        kafka_bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d2")}, tmp_path / "w2.log"
    )
    try:
        second.start()
        asyncio.run(
            produce_json(
                kafka_bootstrap, source, [{"id": "e3", "user": "k1", "type": "C", "ts": 3_000}]
            )
        )
        records = asyncio.run(read_until(kafka_bootstrap, out, lambda rs: len(rs) >= 1, settle=1.5))
        events = cloudevents(records)
        assert [(e["subject"], e["data"]) for e in events] == [("k1", {"a": "e1", "c": "e3"})]
    finally:
        second.stop()


def scripted(n: int, users: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    ts = 1_700_000_000_000
    out = []
    for i in range(n):
        ts += rnd.randint(0, 60_000)
        out.append(
            {
                "id": f"x{i}",
                "user": f"u{rnd.randint(1, users)}",
                "type": rnd.choice("ABC"),
                "ts": ts,
            }
        )
    return out


def test_two_workers_split_the_partitions_and_emit_exactly_the_backtest_set(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env, source, out = setup(tmp_path, kafka_bootstrap)
    events = scripted(600, 40, seed=11)
    rule = load_rules_text(ABC_RULE.format(source=source, out=out), "abc.yaml")
    expected: list[dict[str, Any]] = []
    run_backtest(
        RuleRunner(rule),
        [orjson.dumps(e) for e in events],
        lambda d: expected.append(d.to_cloudevent()),
        topic=source,
        flush=False,
    )
    assert len(expected) > 20

    workers = [
        KairosWorker(
            kafka_bootstrap,
            {**env, "KAIROS_DATA_DIR": str(tmp_path / f"d{i}")},
            tmp_path / f"w{i}.log",
        )
        for i in (1, 2)
    ]
    try:
        for w in workers:
            w.start()
        # both workers must own keyed partitions before the events flow
        for w in workers:
            w.wait_until(lambda w=w: _assigned(w), 60, "an assignment of the keyed topic")
        asyncio.run(produce_json(kafka_bootstrap, source, events, key="user"))
        want = {e["id"] for e in expected}
        records = asyncio.run(
            read_until(
                kafka_bootstrap,
                out,
                lambda rs: {orjson.loads(r.value)["id"] for r in rs} >= want,
                timeout=60,
                settle=2.0,
            )
        )
        got = cloudevents(records)
        assert len(got) == len(expected)
        assert sorted(got, key=lambda e: e["id"]) == sorted(expected, key=lambda e: e["id"])
        counts = [w.http_json("/api/rules")["rules"][0]["counts"]["events"] for w in workers]
        assert all(c > 0 for c in counts) and sum(counts) == len(events), counts
    finally:
        for w in workers:
            w.stop()


def _assigned(worker: KairosWorker) -> bool:
    ready = worker.http_json("/readyz")
    return bool(ready) and '"msg":"keyed partitions assigned"' in worker.since_start()
