"""What the Kafka benchmarks share: a worker subprocess, topics, CPU time, the paced
produce → alert stream and its percentiles.

The paced stream sends ``rate`` events/s of which one in ten completes a match of
:data:`LATENCY_RULE`; the alert carries the completing event's send time, a consumer reads the
alerts and records (receive time − send time). It waits for every alert of the run (up to
``wait`` seconds after the last event), so the slowest ones are never dropped from the sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

__all__ = [
    "LATENCY_RULE",
    "PARTITIONS",
    "ROOT",
    "Worker",
    "add_compare_option",
    "add_producer_slot_option",
    "compared_trees",
    "completing_id",
    "cpu_seconds",
    "create_topics",
    "kafka",
    "latency_worker",
    "paced_stream",
    "pct",
    "summary",
]

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
#: The paced load generator sends what is due at most once per this many ms (see paced_stream;
#: the benches' ``--producer-slot-ms`` sets it).
PRODUCER_SLOT_MS = 1.0

LATENCY_RULE = """
name: bench-latency
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
emit: {{kind: alert, topic: {out}, data: {{sent: "stages.b[0].sent"}}}}
"""


# -- statistics -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``: the value at rank ``int(n * q)``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def summary(values: list[float]) -> dict[str, float]:
    """Count, p50, p99 and max of latencies in ms."""
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p99_ms": round(pct(values, 0.99), 2),
        "max_ms": round(max(values), 2),
    }


def histogram_share(
    before: dict[float, float], after: dict[float, float], bounds: tuple[float, ...]
) -> dict[str, float]:
    """Of the samples between two scrapes of one histogram, the share (%) at or under each of
    ``bounds`` (seconds; each must be a bucket bound), and their count."""
    total = after.get(float("inf"), 0) - before.get(float("inf"), 0)
    out = {"samples": total}
    for bound in bounds:
        n = after.get(bound, 0) - before.get(bound, 0)
        out[f"<={bound * 1000:g}ms"] = round(100 * n / total, 1) if total else 0.0
    return out


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (default: this one), from /proc."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- Kafka ------------------------------------------------------------------------------------


async def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


@contextlib.contextmanager
def kafka(brokers: int = 1) -> Iterator[str]:
    """The bootstrap servers of the run: ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local
    cluster of ``brokers`` started for the run and stopped after it."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        yield bootstrap
        return
    from app.kafka import KafkaCluster

    with KafkaCluster(brokers=brokers) as cluster:
        yield cluster.bootstrap


def add_compare_option(parser: Any) -> None:
    """``--compare DIR`` (repeatable) for a bench's argument parser: another source tree (a
    copy of the repository) whose worker the bench runs too, interleaved with this one."""
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another source tree whose worker runs in every round too (repeatable)",
    )


def compared_trees(parser: Any, paths: list[Path]) -> dict[str, Path]:
    """``{"this tree": ROOT, DIR: DIR resolved, ...}`` for ``--compare``; an argument error
    when a DIR is not a Kairos source tree."""
    trees = {"this tree": ROOT}
    for path in paths:
        if not (path / "app" / "cli.py").is_file():
            parser.error(f"--compare {path}: not a Kairos source tree (no app/cli.py)")
        trees[str(path)] = path.resolve()
    return trees


def add_producer_slot_option(parser: Any) -> None:
    """``--producer-slot-ms`` for a bench's argument parser; the bench sets
    :data:`PRODUCER_SLOT_MS` from it after parsing."""
    parser.add_argument(
        "--producer-slot-ms",
        type=float,
        default=PRODUCER_SLOT_MS,
        help="the paced producer sends what is due at most once per this many ms "
        "(0: a wake-up per event, as before 2026-11-26)",
    )


async def paced_stream(
    bootstrap: str,
    src: str,
    out: str,
    rate: int,
    seconds: float,
    wait: float = 120.0,
    slot_ms: float | None = None,
    alerts: dict[str, tuple[float, int, float]] | None = None,
) -> list[float]:
    """Send ``rate`` events/s for ``seconds`` (one in ten completes a match) and return the
    produce → alert latency of every match, in ms, waiting up to ``wait`` s for the last one.

    ``alerts``: if given, receives per alert, under the id of the event that completed its
    match (:func:`completing_id`), ``(event sent ms, alert record timestamp, received ms)``:
    the record's timestamp is the worker's send, so the last two give the alert's last leg
    (the broker and this reader).

    Unlike a fixed grace period, this never drops the slowest alerts from the sample.

    The producer wakes at most once per ``slot_ms`` (default :data:`PRODUCER_SLOT_MS`) and
    sends every event due by then, each stamped with the time it is sent; 0 wakes for every
    event. The load generator shares the machine with the broker and the worker:
    at 5 000 events/s a wake-up and a produce request per event cost it ~0.7 of a core.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks=1)
    consumer = AIOKafkaConsumer(
        out,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=5,
    )
    await producer.start()
    await consumer.start()
    try:
        await consumer.getmany(timeout_ms=1000)  # positioned at the end before sending
        run = uuid.uuid4().hex[:8]
        latencies: dict[str, float] = {}
        sent_all = asyncio.Event()
        expected = int(rate * seconds) // 10

        async def read() -> None:
            while not (sent_all.is_set() and len(latencies) >= expected):
                batch = await consumer.getmany(timeout_ms=200)
                now = time.time() * 1000
                for records in batch.values():
                    for r in records:
                        event = orjson.loads(r.value)
                        if event["subject"].startswith(run):
                            latencies[event["subject"]] = now - event["data"]["sent"]
                            if alerts is not None:
                                alerts[completing_id(event["subject"])] = (
                                    event["data"]["sent"],
                                    r.timestamp,
                                    now,
                                )

        reader = asyncio.create_task(read())
        start = time.perf_counter()
        total = int(rate * seconds)
        slot = (PRODUCER_SLOT_MS if slot_ms is None else slot_ms) / 1000
        sent = 0
        while sent < total:
            delay = max(start + sent / rate - time.perf_counter(), slot)
            if sent and delay > 0:
                await asyncio.sleep(delay)
            due = max(sent + 1, min(total, int((time.perf_counter() - start) * rate) + 1))
            for i in range(sent, due):
                user = f"{run}-{i - i % 10}" if i % 10 < 2 else f"{run}-{i}"
                kind = "A" if i % 10 == 0 else "B" if i % 10 == 1 else "C"
                now = time.time() * 1000  # event time = send time: later runs are never late
                event = {
                    "id": f"{run}-{i}",
                    "user": user,
                    "type": kind,
                    "ts": int(now),
                    "sent": now,
                }
                await producer.send(src, orjson.dumps(event), key=user.encode())
            sent = due
        # An end marker in every source partition: a keyed partition's watermark is the minimum
        # over the source partitions, so without it the last matches would wait for the
        # partitions that got no later event to go idle (KAIROS_SOURCE_IDLE_TIMEOUT).
        now = time.time() * 1000
        for p in range(PARTITIONS):
            end = {"id": f"{run}-end{p}", "user": f"{run}-end", "type": "C", "ts": int(now)}
            await producer.send(src, orjson.dumps(end), key=b"end", partition=p)
        await producer.flush()
        sent_all.set()
        try:
            await asyncio.wait_for(reader, wait)
        except TimeoutError:
            raise SystemExit(
                f"only {len(latencies)} of {expected} alerts arrived {wait:.0f} s after the last "
                "event"
            ) from None
        return list(latencies.values())
    finally:
        await producer.stop()
        await consumer.stop()


def completing_id(subject: str) -> str:
    """The id of the event that completed the match of the alert about ``subject``: in
    :func:`paced_stream` user ``<run>-<i>`` sends A as event ``<run>-<i>`` and B as the next."""
    run, _, i = subject.rpartition("-")
    return f"{run}-{int(i) + 1}"


# -- the worker -------------------------------------------------------------------------------


class Worker:
    """One ``kairos worker`` subprocess (memory store) with its own web port.

    ``root``: the source tree the worker runs (default: this checkout); benchmarks compare
    trees by running each one's worker against the same broker."""

    def __init__(self, bootstrap: str, env: dict[str, str], log: Path, root: Path = ROOT) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = log
        self.app_id = env.get("KAIROS_APP_ID", "kairos")
        full = {
            **os.environ,
            "PYTHONPATH": str(root),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAIROS_WEB_PORT": str(self.port),
            "KAIROS_LOG_FORMAT": "json",
            "KAIROS_LOG_LEVEL": "WARNING",
            "KAIROS_PARTITIONS": str(PARTITIONS),
            "KAIROS_STANDBY_REPLICAS": "0",
            **env,
        }
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                cwd=root,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return orjson.loads(r.read())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"worker exited; log {self.log}")
            if self.get("/readyz"):
                return
            time.sleep(0.2)
        raise SystemExit(f"worker not ready after {timeout}s; log {self.log}")

    def histograms(self) -> dict[str, dict[float, float]]:
        """The worker's ``kairos_*_seconds`` histograms from ``/metrics``: name -> cumulative
        count per bucket bound (seconds)."""
        from prometheus_client.parser import text_string_to_metric_families

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out: dict[str, dict[float, float]] = {}
        for family in text_string_to_metric_families(text):
            if family.type != "histogram" or not family.name.startswith("kairos_"):
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    out.setdefault(family.name, {})[le] = sample.value
        return out

    def events_done(self, rule: str) -> int:
        doc = self.get("/api/rules") or {"rules": []}
        for r in doc["rules"]:
            if r["name"] == rule:
                return int(r["counts"]["events"])
        return 0

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def latency_worker(
    bootstrap: str,
    tmp: Path,
    name: str,
    root: Path = ROOT,
    processing_time: bool = False,
    env: dict[str, str] | None = None,
) -> tuple[Worker, str, str]:
    """A worker (not started yet: call ``wait_ready``) running :data:`LATENCY_RULE` on fresh
    topics, with its own app id and rules topic (``name`` prefixes them). Returns the worker,
    the source topic and the alert topic. ``processing_time``: the rule without ``time``."""
    suffix = uuid.uuid4().hex[:6]
    src, out = f"{name}-src-{suffix}", f"{name}-out-{suffix}"
    asyncio.run(create_topics(bootstrap, [src, out]))
    rules = tmp / f"{name}-rules-{suffix}"
    rules.mkdir()
    rule = LATENCY_RULE.format(source=src, out=out)
    if processing_time:
        rule = rule.replace("time: ts\n", "")
    (rules / "latency.yaml").write_text(rule)
    worker = Worker(
        bootstrap,
        {
            **(env or {}),
            "KAIROS_APP_ID": f"bench-{name}-{suffix}",
            "KAIROS_RULES_DIR": str(rules),
            "KAIROS_RULES_TOPIC": f"bench-{name}-rules-{suffix}",
        },
        tmp / f"worker-{name}-{suffix}.log",
        root,
    )
    return worker, src, out
