"""Machinery for horizontal-scale runs on a 3-broker cluster (tests/integration/test_scale.py and
bench/scale.py): a steady paced producer, the "everything processed" barrier, partition
assignments read from the workers' logs and an HTTP prober of ``GET /api/keys/{key}``.

Every wait has a deadline and fails with the tails of the workers' logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.protocol.admin import AlterConfigsRequest

from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import ABC_RULE, KairosWorker

ASSIGNED = '"msg":"keyed partitions assigned"'

RULE = ABC_RULE

BASE_TS = 1_700_000_000_000


@dataclass
class ScaleSetup:
    """Topics, rules directory and the environment shared by every worker of one app id."""

    bootstrap: str
    app_id: str
    source: str
    out: str
    source_partitions: int
    partitions: int
    env: dict[str, str]
    tmp: Path

    def worker(self, name: str, **extra: str) -> KairosWorker:
        env = {**self.env, "KAIROS_DATA_DIR": str(self.tmp / f"data-{name}"), **extra}
        return KairosWorker(self.bootstrap, env, self.tmp / f"{name}.log")

    @property
    def keyed_topic(self) -> str:
        return f"{self.app_id}-keyed"


def make_setup(
    bootstrap: str,
    tmp: Path,
    *,
    partitions: int = 6,
    source_partitions: int = 3,
    replication_factor: int = 3,
    guarantee: str = "at_least_once",
    standby: int = 1,
    prefix: str = "scale",
) -> ScaleSetup:
    """Create the source topic and the rules directory; return the workers' environment.

    ``KAIROS_SOURCE_IDLE_TIMEOUT`` keeps its default (5 s) on purpose: a source partition
    whose ingest was killed must hold the event-time watermark back until another worker
    reads it again, however long that takes (else its events of that gap would arrive late,
    and the output would differ from the backtest).
    """
    suffix = uuid.uuid4().hex[:8]
    source, out = f"{prefix}-src-{suffix}", f"{prefix}-out-{suffix}"
    tmp.mkdir(parents=True, exist_ok=True)
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "abc.yaml").write_text(RULE.format(source=source, out=out))
    asyncio.run(
        create_topic(
            bootstrap,
            source,
            partitions=source_partitions,
            replication_factor=replication_factor,
        )
    )
    app_id = f"{prefix}-{suffix}"
    env = {
        "KAIROS_APP_ID": app_id,
        "KAIROS_RULES_DIR": str(rules),
        "KAIROS_RULES_TOPIC": f"rules-{suffix}",
        "KAIROS_RULES_STATUS_TOPIC": f"status-{suffix}",
        "KAIROS_DLQ_TOPIC": f"dlq-{suffix}",
        "KAIROS_PARTITIONS": str(partitions),
        "KAIROS_REPLICATION_FACTOR": str(replication_factor),
        "KAIROS_STANDBY_REPLICAS": str(standby),
        "KAIROS_PROCESSING_GUARANTEE": guarantee,
        "KAIROS_LOG_LEVEL": "INFO",
    }
    return ScaleSetup(bootstrap, app_id, source, out, source_partitions, partitions, env, tmp)


# -- cluster ----------------------------------------------------------------------------------


async def require_min_insync_replicas(bootstrap: str, value: int) -> None:
    """Set the cluster-wide default of ``min.insync.replicas`` (every topic without its own
    value): with replication 3 and ``value`` 2, an acknowledged write is on 2 replicas.

    Kafka 4 refuses a per-broker value while eligible leader replicas are enabled; the
    cluster default (empty broker name) is allowed. aiokafka's ``alter_configs`` cannot send
    an empty broker name, hence the raw request.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        request = AlterConfigsRequest(
            resources=[(ConfigResourceType.BROKER, "", [("min.insync.replicas", str(value))])]
        )
        response = await admin._send_request(request)
        for code, message, *_ in response.resources:
            if code != 0:
                raise AssertionError(f"setting min.insync.replicas failed: {code} {message}")
    finally:
        await admin.close()


async def topic_config(bootstrap: str, topic: str, name: str) -> str | None:
    """The effective value of topic config ``name`` (as the broker reports it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})]
        )
        for _code, _msg, _type, _name, entries in response.resources:
            for entry in entries:
                if entry[0] == name:
                    return str(entry[1])
        return None
    finally:
        await admin.close()


# -- waiting ----------------------------------------------------------------------------------


def tails(workers: Sequence[KairosWorker], lines: int = 25, width: int = 400) -> str:
    """The last ``lines`` log lines of each worker, each cut to ``width`` characters."""
    out = []
    for w in workers:
        cut = "\n".join(line[:width] for line in w.tail(lines).splitlines())
        out.append(f"--- {w.log_path.name} (port {w.port}):\n{cut}")
    return "\n".join(out)


def wait_for(
    check: Callable[[], Any],
    timeout: float,
    what: str,
    workers: Sequence[KairosWorker],
    *,
    alive: Sequence[KairosWorker] = (),
    every: float = 0.2,
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail with the log tails at the deadline
    or as soon as a worker of ``alive`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        for w in alive:
            if w.proc is not None and w.proc.poll() is not None:
                raise AssertionError(
                    f"{w.log_path.name} exited ({w.proc.returncode}) waiting for {what}:\n"
                    f"{tails(workers)}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}:\n{tails(workers)}"
            )
        time.sleep(every)


def start_all(workers: Sequence[KairosWorker], timeout: float = 120.0) -> None:
    """Start the workers at once (one rebalance for all of them), wait until each is ready."""
    errors: list[BaseException] = []

    def run(w: KairosWorker) -> None:
        try:
            w.start(timeout=timeout)
        except BaseException as exc:  # reported below, with every log
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise AssertionError(f"a worker did not start: {errors[0]}\n{tails(workers)}")


def assignments(worker: KairosWorker) -> list[list[int]]:
    """Every keyed-topic assignment the worker logged since it started, oldest first."""
    out = []
    for line in worker.since_start().splitlines():
        if ASSIGNED in line:
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(list(orjson.loads(line)["partitions"]))
    return out


def current(worker: KairosWorker) -> list[int]:
    seen = assignments(worker)
    return seen[-1] if seen else []


def covered(workers: Sequence[KairosWorker], partitions: int) -> bool:
    """Each of ``partitions`` is owned by exactly one of ``workers`` (per their last log line)
    and none of them is idle."""
    owned = [current(w) for w in workers]
    flat = sorted(p for ps in owned for p in ps)
    return all(owned) and flat == list(range(partitions))


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        return {tp.partition: off for tp, off in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def read_all(
    bootstrap: str, topic: str, *, isolation_level: str = "read_uncommitted", timeout: float = 60.0
) -> list[Any]:
    """Every record of ``topic`` up to its end offsets (last stable offsets for
    read_committed) as they are when the read starts."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # topic created by another client
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: list[Any] = []
        deadline = time.monotonic() + timeout
        while True:
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"reading {topic!r}: positions {positions} short of the end offsets {ends} "
                    f"after {timeout:.0f}s"
                )
            batch = await consumer.getmany(timeout_ms=200)
            for tp in sorted(batch, key=lambda t: t.partition):
                got.extend(batch[tp])
    finally:
        await consumer.stop()


def wait_drained(
    setup: ScaleSetup,
    workers: Sequence[KairosWorker],
    alive: Sequence[KairosWorker],
    timeout: float,
) -> None:
    """Every source record is ingested and every keyed message written so far is processed.

    1. the ingest group (``<app id>-ingest``) committed the source topic's end offsets (it
       commits a poll only once its keyed batches are in Kafka);
    2. then the Faust group (``<app id>``) committed the keyed topic up to the end offsets read
       after that (Faust commits a message's offset after its detections and state were sent;
       under exactly_once in the same transaction).
    """
    b = setup.bootstrap

    def ingested() -> bool:
        ends = asyncio.run(end_offsets(b, setup.source, setup.source_partitions))
        done = asyncio.run(committed(b, f"{setup.app_id}-ingest", setup.source))
        return all(done.get(p, -1) >= end for p, end in ends.items())

    wait_for(
        ingested,
        timeout,
        "the ingest group to commit the source end offsets",
        workers,
        alive=alive,
        every=0.5,
    )
    keyed_ends = asyncio.run(end_offsets(b, setup.keyed_topic, setup.partitions))

    def detected() -> bool:
        done = asyncio.run(committed(b, setup.app_id, setup.keyed_topic))
        return all(done.get(p, -1) >= end for p, end in keyed_ends.items())

    wait_for(
        detected,
        timeout,
        f"the detect group to commit the keyed topic to {keyed_ends}",
        workers,
        alive=alive,
        every=0.5,
    )


# -- the stream -------------------------------------------------------------------------------


def event(i: int, rnd: random.Random, users: int) -> dict[str, Any]:
    """Event ``i`` of the stream: event time strictly increasing, so the backtest order is
    the send order."""
    return {
        "id": f"x{i}",
        "user": f"u{rnd.randint(1, users)}",
        "type": rnd.choice("ABC"),
        "ts": BASE_TS + (i + 1) * 1000,
    }


class PacedProducer:
    """Sends the stream at ``rate`` events/s (keyed by user) from a thread until :meth:`stop`.

    ``sent`` lists what was sent, in order: the backtest's input. Also sends one marker per
    source partition before the stream (so every keyed partition knows every source partition
    before the first real event: an unknown partition would not hold the watermark back) and
    after it (event time far ahead: releases the events still buffered for ordering).
    """

    def __init__(self, setup: ScaleSetup, rate: float, *, users: int = 60, seed: int = 1) -> None:
        self.setup = setup
        self.rate = rate
        self.users = users
        self._rnd = random.Random(seed)
        self.sent: list[dict[str, Any]] = []
        self.send_times: list[float] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)

    def markers(self, ts: int) -> None:
        asyncio.run(self._markers(ts))

    async def _markers(self, ts: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.setup.bootstrap, acks="all")
        await producer.start()
        try:
            for p in range(self.setup.source_partitions):
                e = {"id": f"mark-{ts}-{p}", "user": f"mark-{p}", "type": "Z", "ts": ts}
                await producer.send_and_wait(self.setup.source, orjson.dumps(e), partition=p)
                self.sent.append(e)
        finally:
            await producer.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise AssertionError(f"the paced producer failed: {self.error!r}") from self.error

    @property
    def count(self) -> int:
        return len(self.send_times)

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # surfaced by stop()
            self.error = exc

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.setup.bootstrap, acks="all", linger_ms=5)
        await producer.start()
        try:
            start = time.monotonic()
            i = 0
            pending = []
            while not self._stop.is_set():
                due = start + i / self.rate
                now = time.monotonic()
                if due > now:
                    await asyncio.sleep(due - now)
                e = event(i, self._rnd, self.users)
                pending.append(
                    await producer.send(self.setup.source, orjson.dumps(e), key=e["user"].encode())
                )
                self.sent.append(e)
                self.send_times.append(time.monotonic())
                i += 1
                if len(pending) >= 200:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()


# -- the HTTP API -----------------------------------------------------------------------------


def get_key(port: int, key: str, timeout: float = 3.0) -> tuple[bool, str]:
    """(answered?, what came back) for ``GET /api/keys/{key}`` on the worker at ``port``."""
    url = f"http://127.0.0.1:{port}/api/keys/{key}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = orjson.loads(r.read())
            return body.get("key") == key and bool(body.get("recent")), f"{r.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{exc.code}"
    except (OSError, ValueError) as exc:
        return False, type(exc).__name__


@dataclass
class ProbeStats:
    answered: int = 0  # probes that got the key's state
    retried: int = 0  # of those, probes that needed more than one request
    retries: int = 0  # failed requests before an answer
    longest: float = 0.0  # longest time from a probe's first request to its answer (s)
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # (port, key, last error)
    errors: dict[str, int] = field(default_factory=dict)  # failed request outcome -> count

    def summary(self) -> str:
        return (
            f"{self.answered} probes answered, {self.retried} after retrying "
            f"({self.retries} failed requests: {self.errors}; longest wait {self.longest:.1f}s), "
            f"{len(self.failed)} never answered: {self.failed[:5]}"
        )


class KeyProber:
    """Asks every target worker for every key, over and over, from a thread.

    A probe that does not get the key's state is retried (every 0.25 s) until it does, or
    fails after ``give_up`` seconds. A worker removed from the targets (about to be killed)
    has its open probe dropped, not counted.
    """

    def __init__(self, keys: Sequence[str], *, give_up: float = 90.0) -> None:
        self.keys = list(keys)
        self.give_up = give_up
        self.stats = ProbeStats()
        self._targets: list[KairosWorker] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="key-prober", daemon=True)

    def add(self, worker: KairosWorker) -> None:
        with self._lock:
            self._targets.append(worker)

    def remove(self, worker: KairosWorker) -> None:
        with self._lock:
            self._targets.remove(worker)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> ProbeStats:
        self._stop.set()
        self._thread.join(self.give_up + 10)
        return self.stats

    def _targeted(self, worker: KairosWorker) -> bool:
        with self._lock:
            return worker in self._targets

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                targets = list(self._targets)
            for w in targets:
                for key in self.keys:
                    self._probe(w, key)
            time.sleep(0.1)

    def _probe(self, worker: KairosWorker, key: str) -> None:
        s = self.stats
        first = time.monotonic()
        failures = 0
        while True:
            ok, what = get_key(worker.port, key)
            if ok:
                s.answered += 1
                s.retries += failures
                s.retried += failures > 0
                s.longest = max(s.longest, time.monotonic() - first)
                return
            if not self._targeted(worker):
                return
            failures += 1
            s.errors[what] = s.errors.get(what, 0) + 1
            if time.monotonic() - first > self.give_up:
                s.failed.append((worker.port, key, what))
                return
            time.sleep(0.25)
