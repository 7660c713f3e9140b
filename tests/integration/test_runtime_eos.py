"""exactly_once on a 3-broker cluster: a read_committed consumer sees every offer once, across
a SIGKILL of the worker in the middle of the stream."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from agents.wire import partition_for
from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import KairosWorker, produce_json, read_until
from tests.integration.scale_support import current, wait_for

# pytest's limit is above the sum of the tests' own deadlines (worker starts, takeover, reads:
# ~600 s at worst for the zombie test), so a slow run fails on its own check, with its
# diagnosis and the workers' state dumps, rather than on pytest's 300 s default.
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

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


def end_markers(source_partitions: int = 2) -> list[dict[str, Any]]:
    """One event per source partition after the stream (type Z: no stage matches it), far
    ahead in event time: the watermark is the minimum over the source partitions (none goes
    idle, see :func:`setup`), so the stream's last B events are released only once every
    source partition has passed them."""
    keys: dict[int, str] = {}
    i = 0
    while len(keys) < source_partitions:
        keys.setdefault(partition_for(f"end{i}", source_partitions), f"end{i}")
        i += 1
    return [{"id": f"end-{k}", "user": k, "type": "Z", "ts": 10**13} for k in keys.values()]


def setup(bootstrap: str, tmp_path: Path) -> tuple[str, str, dict[str, str]]:
    """Source and output topics and the workers' environment of one test (own app id)."""
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
        # The default KAIROS_SOURCE_IDLE_TIMEOUT (5 s) on purpose: a source partition whose
        # ingest is stopped (SIGSTOP, kill) for longer must still hold the event-time watermark
        # back until a worker reads it again, else its events arrive late and give no offer.
    }
    return source, out, env


def test_no_duplicates_for_read_committed_across_a_worker_kill(
    kafka_cluster3: Any, tmp_path: Path
) -> None:
    bootstrap = kafka_cluster3.bootstrap
    source, out, env = setup(bootstrap, tmp_path)
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
        asyncio.run(produce_json(bootstrap, source, pairs(n1, n2) + end_markers(), key="user"))
        first.kill()
        second.start(timeout=120)
        want = n1 + n2
        records = _read_every_offer(
            bootstrap,
            out,
            want,
            120,
            lambda: (
                f"second worker's rules: {second.http_json('/api/rules')}\n"
                f"coordinator log of app {env['KAIROS_APP_ID']!r}:\n"
                f"{_coordinator_log(kafka_cluster3, env['KAIROS_APP_ID'])}\n"
                f"second worker's log:\n{second.tail(60)}"
            ),
        )
    finally:
        first.kill()
        second.stop()
    events = [orjson.loads(r.value) for r in records]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == n1 + n2, f"{len(ids)} offers, {len(set(ids))} distinct"
    assert {e["subject"] for e in events} == {f"k{i}" for i in range(n1 + n2)}


def test_a_worker_fenced_as_a_zombie_neither_duplicates_nor_stops(
    kafka_cluster3: Any, tmp_path: Path
) -> None:
    """Two workers; one is stopped (SIGSTOP) with work in flight until the group gives its
    keyed partitions to the other, whose producers fence its transactions; then it resumes
    as a zombie. Its commits and sends fail as fenced: it drops that work and rejoins instead
    of stopping, and a read_committed reader gets every offer exactly once."""
    bootstrap = kafka_cluster3.bootstrap
    source, out, env = setup(bootstrap, tmp_path)
    first = KairosWorker(
        bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d1")}, tmp_path / "w1.log"
    )
    second = KairosWorker(
        bootstrap, {**env, "KAIROS_DATA_DIR": str(tmp_path / "d2")}, tmp_path / "w2.log"
    )
    n1, n2 = 150, 150
    paused = False
    try:
        first.start(timeout=120)
        second.start(timeout=120)
        asyncio.run(produce_json(bootstrap, source, pairs(0, n1), key="user"))
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
        asyncio.run(produce_json(bootstrap, source, pairs(n1, n2) + end_markers(), key="user"))
        assert first.proc is not None
        os.killpg(first.proc.pid, signal.SIGSTOP)
        paused = True
        wait_for(
            lambda: current(second) == [0, 1, 2],
            90,
            "the second worker taking every keyed partition",
            [first, second],
            alive=[second],
        )
        os.killpg(first.proc.pid, signal.SIGCONT)
        paused = False
        want = n1 + n2
        records = _read_every_offer(
            bootstrap,
            out,
            want,
            150,
            lambda: (
                f"{_state_dumps([first, second])}\n"
                f"rule counts: first {first.http_json('/api/rules')}, "
                f"second {second.http_json('/api/rules')}"
            ),
        )
        for worker in (first, second):
            assert worker.proc is not None and worker.proc.poll() is None, (
                f"{worker.log_path.name} stopped:\n{worker.tail(30)}"
            )
        fenced = "lost its transaction" in first.log
        print(f"\nzombie: the resumed worker dropped a lost transaction: {fenced}")
    finally:
        if paused and first.proc is not None:
            os.killpg(first.proc.pid, signal.SIGCONT)
        first.kill()
        second.kill()
    events = [orjson.loads(r.value) for r in records]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == n1 + n2, f"{len(ids)} offers, {len(set(ids))} distinct"
    assert {e["subject"] for e in events} == {f"k{i}" for i in range(n1 + n2)}


def _read_every_offer(
    bootstrap: str, out: str, want: int, timeout: float, context: Callable[[], str]
) -> list[Any]:
    """Read ``out`` with read_committed until ``want`` distinct keys arrived; on failure say
    what is missing, committed or not (``_diagnose``), plus ``context()``."""
    try:
        return asyncio.run(
            read_until(
                bootstrap,
                out,
                lambda rs: len({r.key for r in rs}) >= want,
                isolation_level="read_committed",
                timeout=timeout,
                settle=3.0,
            )
        )
    except AssertionError as exc:
        # context() first: it asks the live workers for state dumps, which should show them
        # as they are when the read gave up
        context_text = context()
        raise AssertionError(
            f"{exc}\n{asyncio.run(_diagnose(bootstrap, out, want))}\n{context_text}"
        ) from None


def _state_dumps(workers: list[KairosWorker]) -> str:
    """Ask each live worker for its state dump (SIGUSR1, app/diagnostics.py) and return the
    dumps; the worker logs one as soon as its loop runs the signal handler."""
    asked = []
    for worker in workers:
        if worker.proc is not None and worker.proc.poll() is None:
            before = worker.log.count("worker state dump")
            os.kill(worker.proc.pid, signal.SIGUSR1)
            asked.append((worker, before))
    out = []
    for worker, before in asked:
        with contextlib.suppress(AssertionError):
            worker.wait_until(
                lambda w=worker, b=before: w.log.count("worker state dump") > b, 15, "state dump"
            )
        dumps = [line for line in worker.log.splitlines() if "worker state dump" in line]
        out.append(f"{worker.log_path.name} state dump:\n{dumps[-1] if dumps else 'none'}")
    return "\n".join(out)


async def _diagnose(bootstrap: str, topic: str, want: int) -> str:
    """Say whether offers are missing or only not committed, per partition of ``topic``.

    A ``read_uncommitted`` reader also returns records of aborted transactions, so it alone
    cannot tell an open transaction from a lost offer: the last stable offset (LSO, the end
    offset a ``read_committed`` consumer gets) below the high watermark means a transaction is
    still open; equal offsets with keys missing from the committed read mean the offers were
    aborted and never sent again.
    """
    committed = await read_until(
        bootstrap, topic, lambda rs: True, settle=3.0, isolation_level="read_committed"
    )
    raw = await read_until(bootstrap, topic, lambda rs: True, settle=3.0)
    ends: dict[str, dict[Any, int]] = {}
    for level in ("read_uncommitted", "read_committed"):
        consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=None, isolation_level=level
        )
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=500)
            ends[level] = await consumer.end_offsets(sorted(consumer.assignment()))
        finally:
            await consumer.stop()
    seen = {r.key for r in committed}
    missing = [k for k in (f"k{i}" for i in range(want)) if k.encode() not in seen]
    lines = [
        f"read_committed: {len(committed)} records, {len(seen)} distinct keys of {want}; "
        f"read_uncommitted: {len(raw)} records, {len({r.key for r in raw})} distinct keys",
        # the source topic has 2 partitions, the keyed topic 3 (Kafka's default partitioner)
        "missing (key source/keyed partition): "
        + " ".join(f"{k} {partition_for(k, 2)}/{partition_for(k, 3)}" for k in missing),
    ]
    for tp in sorted(ends["read_uncommitted"], key=lambda t: t.partition):
        high, stable = ends["read_uncommitted"][tp], ends["read_committed"][tp]
        lost = sorted(
            (r.offset, r.key.decode())
            for r in raw
            if r.partition == tp.partition and r.key not in seen
        )
        lines.append(
            f"partition {tp.partition}: high watermark {high}, last stable offset {stable}"
            f" ({'transaction open' if stable < high else 'no open transaction'}); "
            f"{len(lost)} uncommitted-only records, first: {lost[:5]}"
        )
    return "\n".join(lines)


def _coordinator_log(cluster: Any, app_id: str, lines: int = 40) -> str:
    """The brokers' log lines about the app's transactional ids (the last ``lines``)."""
    found = []
    for node in cluster.nodes:
        with open(node.log_file, errors="replace") as log:
            found.extend(line.rstrip() for line in log if app_id in line)
    return "\n".join(sorted(found)[-lines:])
