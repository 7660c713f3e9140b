"""Horizontal scale on a 3-broker cluster: throughput per worker count, failover after kill -9.

    .venv/bin/python -m bench.scale                     # starts its own 3-broker cluster
    KAFKA_BOOTSTRAP_SERVERS=h1:9092,h2:9092,h3:9092 .venv/bin/python -m bench.scale

Topics: replication 3 (min.insync.replicas 2 on the cluster the benchmark starts), 6 keyed
partitions, 6 source partitions; the rule is a 3-stage sequence per user (tests/integration/
runtime_support.ABC_RULE). Workers are ``kairos worker`` subprocesses (memory store, at_least_once).

1. **throughput** for 1, 2, 3 workers (``--workers``): the workers join first (every keyed
   partition owned), then ``--events`` events are produced in one burst; events/s from the
   first send until the ingest group committed the source's end offsets and the detect group
   committed the keyed topic up to its end (every event through detect). Worker counts are
   interleaved per repeat; ratios are against 1 worker of the same repeat.
2. **failover** after SIGKILL of one of 3 workers, for each ``--standby`` value (standby table
   replicas) and ``--session-timeouts``, under a paced stream (``--rate`` events/s). From the
   kill until: the survivors own the killed worker's keyed partitions (their log), the first
   offer of a key in those partitions arrives (counted from 1 s after the kill, so the killed
   worker's last sends do not count), and every probe key of those partitions answers
   ``GET /api/keys/{key}`` through a survivor.

Results go to stdout (Markdown tables for BENCHMARKS.md) and ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.wire import partition_for
from bench.common import kafka
from tests.integration.runtime_support import KairosWorker, read_until
from tests.integration.scale_support import (
    PacedProducer,
    ScaleSetup,
    covered,
    current,
    event,
    get_key,
    make_setup,
    require_min_insync_replicas,
    start_all,
    wait_drained,
    wait_for,
)

PARTITIONS = 6
STEADY_BEFORE_KILL = 5.0  # seconds of steady stream (standbys following) before the kill
BENCH_ENV = {"KAIROS_TICK_INTERVAL": "1.0"}  # the default (the test helper sets 0.2)


def log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def start_workers(setup: ScaleSetup, n: int, **env: str) -> list[KairosWorker]:
    workers = [setup.worker(f"w{i + 1}", **BENCH_ENV, **env) for i in range(n)]
    try:
        start_all(workers, timeout=180)
        wait_for(
            lambda: covered(workers, setup.partitions),
            120,
            f"{n} workers owning the keyed partitions",
            workers,
            alive=workers,
        )
    except BaseException:
        stop(workers)
        raise
    return workers


def stop(workers: list[KairosWorker]) -> None:
    for w in workers:
        w.stop()


# -- throughput -----------------------------------------------------------------------------


async def burst(bootstrap: str, topic: str, n: int, seed: int) -> float:
    """Send ``n`` events as fast as the producer goes; return the monotonic start time."""
    rnd = random.Random(seed)
    values = [event(i, rnd, 5000) for i in range(n)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        start = time.monotonic()
        futures = [
            await producer.send(topic, orjson.dumps(e), key=e["user"].encode()) for e in values
        ]
        await asyncio.gather(*futures)
        return start
    finally:
        await producer.stop()


def throughput_run(bootstrap: str, tmp: Path, n_workers: int, events: int) -> float:
    setup = make_setup(
        bootstrap, tmp, partitions=PARTITIONS, source_partitions=PARTITIONS, prefix="bscale"
    )
    workers = start_workers(setup, n_workers)
    try:
        producer = PacedProducer(setup, 1.0)
        producer.markers(1)
        wait_drained(setup, workers, workers, timeout=120)
        start = asyncio.run(burst(bootstrap, setup.source, events, seed=n_workers))
        wait_drained(setup, workers, workers, timeout=900)
        return events / (time.monotonic() - start)
    finally:
        stop(workers)


# -- failover -------------------------------------------------------------------------------


class OutputWatcher:
    """Reads the output topic from its end (at start) in a thread; keeps (receive time, key)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap, self.topic = bootstrap, topic
        self.seen: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self.ready.wait(60):
            raise AssertionError(f"could not start reading {self.topic!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(self.topic, p) for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)
            self.ready.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.monotonic()
                for records in batch.values():
                    self.seen.extend((now, r.key.decode()) for r in records if r.key)
        finally:
            await consumer.stop()


def failover_run(
    bootstrap: str, tmp: Path, standby: int, session_timeout: float, rate: float
) -> dict[str, float]:
    setup = make_setup(
        bootstrap,
        tmp,
        partitions=PARTITIONS,
        source_partitions=PARTITIONS,
        standby=standby,
        prefix="bfail",
    )
    heartbeat = max(0.5, min(3.0, session_timeout / 3))
    workers = start_workers(
        setup,
        3,
        KAIROS_SESSION_TIMEOUT=str(session_timeout),
        KAIROS_HEARTBEAT_INTERVAL=str(heartbeat),
    )
    victim, survivors = workers[0], workers[1:]
    producer = PacedProducer(setup, rate, users=300)
    watcher: OutputWatcher | None = None
    try:
        producer.markers(1)
        wait_drained(setup, workers, workers, timeout=120)
        producer.start()
        lost = set(current(victim))

        def keys_of_victim(records: list[Any]) -> set[str]:
            keys = {r.key.decode() for r in records if r.key}
            return {k for k in keys if partition_for(k, PARTITIONS) in lost}

        early = asyncio.run(
            read_until(
                bootstrap, setup.out, lambda rs: len(keys_of_victim(rs)) >= 4, timeout=120, settle=0
            )
        )
        probe = sorted(keys_of_victim(early))[:4]
        time.sleep(STEADY_BEFORE_KILL)  # part of the scenario: the stream runs steadily
        watcher = OutputWatcher(bootstrap, setup.out)
        watcher.start()
        killed_at = time.monotonic()
        victim.kill()
        result: dict[str, float] = {}
        deadline = killed_at + 240
        turn = 0
        while len(result) < 3:
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"failover not complete after 240 s: {result}")
            if "assigned_s" not in result and covered(survivors, setup.partitions):
                result["assigned_s"] = now - killed_at
            if "offers_s" not in result:
                for t, key in list(watcher.seen):
                    if t > killed_at + 1.0 and partition_for(key, PARTITIONS) in lost:
                        result["offers_s"] = t - killed_at
                        break
            if "keys_s" not in result:
                turn += 1
                w = survivors[turn % 2]
                if all(get_key(w.port, k, timeout=2.0)[0] for k in probe):
                    result["keys_s"] = time.monotonic() - killed_at
            time.sleep(0.1)
        return result
    finally:
        if watcher is not None:
            watcher.stop()
        producer.stop()
        stop(workers)


# -- main -----------------------------------------------------------------------------------


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000, help="events per throughput run")
    parser.add_argument("--workers", default="1,2,3", help="worker counts for throughput")
    parser.add_argument("--repeats", type=int, default=2, help="repeats of each measurement")
    parser.add_argument("--standby", default="0,1", help="standby replicas for failover")
    parser.add_argument(
        "--session-timeouts", default="10", help="KAIROS_SESSION_TIMEOUT values for failover"
    )
    parser.add_argument("--rate", type=float, default=100.0, help="events/s during failover")
    parser.add_argument("--skip", choices=("throughput", "failover"), help="leave one part out")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    counts = [int(x) for x in args.workers.split(",") if x]
    standbys = [int(x) for x in args.standby.split(",") if x]
    sessions = [float(x) for x in args.session_timeouts.split(",") if x]

    eps: dict[int, list[float]] = {n: [] for n in counts}
    ratios: dict[int, list[float]] = {n: [] for n in counts}
    fail: dict[str, list[dict[str, float]]] = {}
    started = not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    with (
        kafka(brokers=3) as bootstrap,
        tempfile.TemporaryDirectory(prefix="kairos-bench-scale-") as d,
    ):
        if started:
            asyncio.run(require_min_insync_replicas(bootstrap, 2))
        tmp = Path(d)
        log(f"worker logs in {tmp}")
        for r in range(args.repeats):
            if args.skip != "throughput":
                for n in counts:
                    run_dir = tmp / f"tp-{r}-{n}-{uuid.uuid4().hex[:4]}"
                    eps[n].append(throughput_run(bootstrap, run_dir, n, args.events))
                    log(f"repeat {r + 1}: {n} worker(s): {eps[n][-1]:,.0f} events/s")
                if 1 in counts:
                    for n in counts:
                        ratios[n].append(eps[n][-1] / eps[1][-1])
            if args.skip != "failover":
                for s in sessions:
                    for sb in standbys:
                        name = f"standby {sb}, session timeout {s:g} s"
                        run_dir = tmp / f"fo-{r}-{sb}-{s:g}-{uuid.uuid4().hex[:4]}"
                        res = failover_run(bootstrap, run_dir, sb, s, args.rate)
                        fail.setdefault(name, []).append(res)
                        log(f"repeat {r + 1}: {name}: {res}")

    result = {
        "command": " ".join(["python -m bench.scale", *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.platform()}",
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "events": args.events,
        "throughput_eps": {str(n): [round(x) for x in xs] for n, xs in eps.items()},
        "ratio_vs_1": {str(n): [round(x, 2) for x in xs] for n, xs in ratios.items()},
        "failover": fail,
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.skip != "throughput":
        print("\n| workers | events/s (median; runs) | vs 1 worker (median of per-repeat ratios) |")
        print("|---|---|---|")
        for n in counts:
            runs = ", ".join(f"{x:,.0f}" for x in eps[n])
            ratio = f"{median(ratios[n]):.2f}×" if ratios[n] else "n/a"
            print(f"| {n} | {median(eps[n]):,.0f} ({runs}) | {ratio} |")
    if args.skip != "failover":
        print(
            "\n| failover (kill -9 of 1 of 3) | partitions reassigned | first offer "
            "of a moved key | moved keys answer over HTTP |"
        )
        print("|---|---|---|---|")
        for name, runs in fail.items():
            cells = []
            for field in ("assigned_s", "offers_s", "keys_s"):
                xs = [r[field] for r in runs]
                cells.append(f"{median(xs):.1f} s ({', '.join(f'{x:.1f}' for x in xs)})")
            print(f"| {name} | {' | '.join(cells)} |")
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
