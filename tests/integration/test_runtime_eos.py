"""exactly_once on a 3-broker cluster: a read_committed consumer sees every offer once, across
a SIGKILL of the worker in the middle of the stream."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import KairosWorker, produce_json, read_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RULE = """
name: pair
version: 1
source: {source}
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
emit: {{kind: offer, topic: {out}, data: {{a: "stages.a[0].id", b: "stages.b[0].id"}}}}
"""


def pairs(start: int, n: int) -> list[dict[str, Any]]:
    """n keys, each an A then a B (event time increasing in send order): one offer per key."""
    out = []
    for i in range(start, start + n):
        out.append({"id": f"a{i}", "user": f"k{i}", "type": "A", "ts": (2 * start + i) * 10})
    for i in range(start, start + n):
        out.append({"id": f"b{i}", "user": f"k{i}", "type": "B", "ts": (2 * start + n + i) * 10})
    return out


def test_no_duplicates_for_read_committed_across_a_worker_kill(
    kafka_cluster3: Any, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster3.bootstrap
    suffix = uuid.uuid4().hex[:8]
    source, out = f"eos-src-{suffix}", f"eos-out-{suffix}"
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pair.yaml").write_text(RULE.format(source=source, out=out))
    asyncio.run(create_topic(bootstrap, source, partitions=2, replication_factor=3))
    env = {
        "KAIROS_APP_ID": f"eos-{suffix}",
        "KAIROS_RULES_DIR": str(rules),
        "KAIROS_RULES_TOPIC": f"rules-{suffix}",
        "KAIROS_RULES_STATUS_TOPIC": f"status-{suffix}",
        "KAIROS_DLQ_TOPIC": f"dlq-{suffix}",
        "KAIROS_PARTITIONS": "3",
        "KAIROS_REPLICATION_FACTOR": "3",
        "KAIROS_STANDBY_REPLICAS": "0",
        "KAIROS_PROCESSING_GUARANTEE": "exactly_once",
    }
    first = KairosWorker(
        bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d1")}, tmp_path / "w1.log"
    )
    second = KairosWorker(
        bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d2")}, tmp_path / "w2.log"
    )
    n1, n2 = 150, 150
    try:
        first.start(timeout=120)
        asyncio.run(produce_json(bootstrap, source, pairs(0, n1), key="user"))
        # wait until some (not necessarily all) offers are committed, then crash mid-stream
        asyncio.run(
            read_until(
                bootstrap,
                out,
                lambda rs: len(rs) >= 20,
                isolation_level="read_committed",
                settle=0,
                timeout=90,
            )
        )
        asyncio.run(produce_json(bootstrap, source, pairs(n1, n2), key="user"))
        first.kill()
        second.start(timeout=120)
        want = n1 + n2
        try:
            records = asyncio.run(
                read_until(
                    bootstrap,
                    out,
                    lambda rs: len({r.key for r in rs}) >= want,
                    isolation_level="read_committed",
                    timeout=120,
                    settle=3.0,
                )
            )
        except AssertionError as exc:
            # say whether the offers are missing or only not committed (an open transaction)
            raw = asyncio.run(read_until(bootstrap, out, lambda rs: True, settle=3.0))
            raise AssertionError(
                f"{exc}\nread_uncommitted sees {len(raw)} records, "
                f"{len({r.key for r in raw})} distinct keys of {want}; "
                f"second worker's rules: {second.http_json('/api/rules')}"
            ) from None
    finally:
        first.kill()
        second.stop()
    events = [orjson.loads(r.value) for r in records]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == n1 + n2, f"{len(ids)} offers, {len(set(ids))} distinct"
    assert {e["subject"] for e in events} == {f"k{i}" for i in range(n1 + n2)}
