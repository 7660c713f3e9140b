"""End-to-end benchmark on a real broker: Kairos against the Kafka client's own limit.

    .venv/bin/python -m bench.e2e                      # starts a local broker for the run
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.e2e --events 200000

Three measurements, in one run:

1. **passthrough**: a bare aiokafka consume → produce loop (getmany, send every record to
   another topic, commit per poll) over ``--events`` pre-loaded events: the client's limit.
2. **kairos**: a ``kairos worker`` (subprocess, one process, memory store) with the
   flight-disruption rules over the same number of pre-loaded flight events, at saturation:
   events/s from the first ingested event until every event has been through detect.
3. **latency**: produce → alert at fixed rates (``--rates``): a paced producer sends events of
   which one in ten completes a match; the alert carries the completing event's send time,
   a consumer reads the alerts; p50/p99 of (receive time − send time).

Results go to stdout (a Markdown table for BENCHMARKS.md) and ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4

FLIGHT_RULES = ("rebooking-offer.yaml", "service-desk-alert.yaml")

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


# -- data -----------------------------------------------------------------------------------


def flight_events(n: int, passengers: int, seed: int = 1) -> list[bytes]:
    """Flight-disruption traffic: delays, connections at risk, searches, bookings, noise."""
    rnd = random.Random(seed)
    ts = 1_790_000_000_000
    out = []
    kinds = [
        ("FlightDelayed", 2),
        ("ConnectionAtRisk", 2),
        ("RebookingSearch", 2),
        ("Booking", 1),
        ("CheckIn", 6),
        ("GateChanged", 3),
    ]
    names = [k for k, w in kinds for _ in range(w)]
    for i in range(n):
        ts += rnd.randint(0, 40)
        kind = rnd.choice(names)
        event: dict[str, Any] = {
            "event_id": f"f{i}",
            "passenger_id": f"P-{rnd.randint(1, passengers)}",
            "type": kind,
            "ts": ts,
            "flight": f"KA{rnd.randint(100, 999)}",
        }
        if kind == "FlightDelayed":
            event["delay_min"] = rnd.choice([15, 30, 60, 90, 180])
        elif kind == "ConnectionAtRisk":
            event["connecting_flight"] = f"KA{rnd.randint(100, 999)}"
        elif kind == "RebookingSearch":
            event["destination"] = rnd.choice(["LHR", "CDG", "FRA", "JFK"])
        out.append(orjson.dumps(event))
    return out


# -- kafka helpers ----------------------------------------------------------------------------


async def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def preload(bootstrap: str, topic: str, values: list[bytes], key_field: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, acks=1
    )
    await producer.start()
    try:
        futures = []
        for v in values:
            key = orjson.loads(v)[key_field].encode()
            futures.append(await producer.send(topic, v, key=key))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (default: this one), from /proc."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def passthrough(bootstrap: str, src: str, dst: str, n: int) -> tuple[float, float]:
    """Events/s of a bare consume → produce loop over ``n`` pre-loaded records, and events
    per CPU second of the loop's process (robust to a loaded machine)."""
    consumer = AIOKafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=f"bench-pt-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=0, max_batch_size=1 << 20, acks="all"
    )
    await consumer.start()
    await producer.start()
    try:
        done = 0
        start = None
        cpu0 = 0.0
        while done < n:
            polled = await consumer.getmany(timeout_ms=500, max_records=2000)
            if not polled:
                continue
            if start is None:
                start = time.perf_counter()
                cpu0 = cpu_seconds()
            futures = []
            for recs in polled.values():
                for r in recs:
                    futures.append(await producer.send(dst, r.value, key=r.key))
            await asyncio.gather(*futures)
            await consumer.commit()
            done += len(futures)
        assert start is not None
        return n / (time.perf_counter() - start), n / (cpu_seconds() - cpu0)
    finally:
        await consumer.stop()
        await producer.stop()


# -- the worker -------------------------------------------------------------------------------


class Worker:
    def __init__(self, bootstrap: str, env: dict[str, str], log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = log
        full = {
            **os.environ,
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
                cwd=ROOT,
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


def kairos_saturation(bootstrap: str, n: int, tmp: Path) -> tuple[float, float]:
    """Events/s of a worker over ``n`` pre-loaded flight events, and events per CPU second
    of the worker process."""
    suffix = uuid.uuid4().hex[:6]
    src = f"flight-events-{suffix}"
    rules = tmp / "rules"
    rules.mkdir()
    for name in FLIGHT_RULES:
        text = (ROOT / "scenarios" / "flights" / "rules" / name).read_text()
        text = text.replace("source: flight-events", f"source: {src}")
        text = text.replace("topic: offers", f"topic: offers-{suffix}")
        text = text.replace("topic: alerts", f"topic: alerts-{suffix}")
        (rules / name).write_text(text)
    asyncio.run(create_topics(bootstrap, [src]))
    print(f"  preloading {n} flight events ...", file=sys.stderr)
    asyncio.run(
        preload(bootstrap, src, flight_events(n, passengers=max(1000, n // 50)), "passenger_id")
    )
    worker = Worker(
        bootstrap,
        {
            "KAIROS_APP_ID": f"bench-{suffix}",
            "KAIROS_RULES_DIR": str(rules),
            "KAIROS_RULES_TOPIC": f"bench-rules-{suffix}",
        },
        tmp / "worker-saturation.log",
    )
    try:
        worker.wait_ready()
        rule = "rebooking-offer"
        samples: list[tuple[float, int, float]] = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            done = worker.events_done(rule)
            samples.append((time.perf_counter(), done, cpu_seconds(worker.proc.pid)))
            if done >= n:
                break
            time.sleep(0.25)
        else:
            raise SystemExit(f"kairos processed {samples[-1][1]} of {n} events in 600 s")
        # from the first sample that shows progress to the last (start-up excluded)
        t0, d0, c0 = next(s for s in samples if s[1] > 0)
        return (n - d0) / (samples[-1][0] - t0), (n - d0) / (samples[-1][2] - c0)
    finally:
        worker.stop()


async def paced_latency(
    bootstrap: str, src: str, out: str, rate: int, seconds: float
) -> list[float]:
    """Send ``rate`` events/s for ``seconds``; one in ten completes a match. Latencies in ms."""
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
    await consumer.getmany(timeout_ms=1000)  # position at the end before sending
    latencies: list[float] = []
    expected = 0
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set() or len(latencies) < expected:
            batch = await consumer.getmany(timeout_ms=200)
            now = time.time() * 1000
            for recs in batch.values():
                for r in recs:
                    latencies.append(now - orjson.loads(r.value)["data"]["sent"])
            if stop.is_set() and not batch:
                break

    reader = asyncio.create_task(read())
    total = int(rate * seconds)
    start = time.perf_counter()
    seq = uuid.uuid4().hex[:6]
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        ts = int(time.time() * 1000)  # event time = send time: later runs are never late
        user = f"{seq}-{i - i % 10}" if i % 10 < 2 else f"{seq}-{i}"
        kind = "A" if i % 10 == 0 else "B" if i % 10 == 1 else "C"
        event = {
            "id": f"{seq}-{i}",
            "user": user,
            "type": kind,
            "ts": ts,
            "sent": time.time() * 1000,
        }
        await producer.send(src, orjson.dumps(event), key=user.encode())
        if kind == "B":
            expected += 1
    await producer.flush()
    await asyncio.sleep(3)
    stop.set()
    await asyncio.wait_for(reader, 30)
    await producer.stop()
    await consumer.stop()
    if len(latencies) < expected:
        print(f"  warning: {len(latencies)} of {expected} alerts arrived", file=sys.stderr)
    return latencies


def latency_runs(
    bootstrap: str, rates: list[int], seconds: float, tmp: Path
) -> dict[int, dict[str, float]]:
    suffix = uuid.uuid4().hex[:6]
    src, out = f"lat-src-{suffix}", f"lat-out-{suffix}"
    rules = tmp / "lat-rules"
    rules.mkdir()
    (rules / "latency.yaml").write_text(LATENCY_RULE.format(source=src, out=out))
    asyncio.run(create_topics(bootstrap, [src, out]))
    worker = Worker(
        bootstrap,
        {
            "KAIROS_APP_ID": f"bench-lat-{suffix}",
            "KAIROS_RULES_DIR": str(rules),
            "KAIROS_RULES_TOPIC": f"bench-rules-{suffix}",
        },
        tmp / "worker-latency.log",
    )
    results: dict[int, dict[str, float]] = {}
    try:
        worker.wait_ready()
        asyncio.run(paced_latency(bootstrap, src, out, 200, 2))  # warm-up
        for rate in rates:
            lat = sorted(asyncio.run(paced_latency(bootstrap, src, out, rate, seconds)))
            if not lat:
                raise SystemExit(f"no alert arrived at {rate} ev/s; log {worker.log}")
            results[rate] = {
                "alerts": len(lat),
                "p50_ms": statistics.median(lat),
                "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
                "max_ms": lat[-1],
            }
            print(f"  {rate} ev/s: {results[rate]}", file=sys.stderr)
    finally:
        worker.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per throughput run")
    parser.add_argument("--rates", default="1000,5000", help="fixed rates for the latency runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each latency run")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r]

    cluster = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from app.kafka import KafkaCluster

        cluster = KafkaCluster(brokers=1)
        cluster.start()
        bootstrap = cluster.bootstrap
    try:
        with tempfile.TemporaryDirectory(prefix="kairos-bench-") as d:
            tmp = Path(d)
            print(f"  worker logs in {tmp}", file=sys.stderr)
            suffix = uuid.uuid4().hex[:6]
            src, dst = f"pt-src-{suffix}", f"pt-dst-{suffix}"
            asyncio.run(create_topics(bootstrap, [src, dst]))
            print(f"  preloading {args.events} events for the passthrough ...", file=sys.stderr)
            asyncio.run(preload(bootstrap, src, flight_events(args.events, 5000), "passenger_id"))
            pt, pt_cpu = asyncio.run(passthrough(bootstrap, src, dst, args.events))
            print(f"  passthrough: {pt:,.0f} ev/s, {pt_cpu:,.0f} ev/CPU-s", file=sys.stderr)
            kairos, kairos_cpu = kairos_saturation(bootstrap, args.events, tmp)
            print(f"  kairos: {kairos:,.0f} ev/s, {kairos_cpu:,.0f} ev/CPU-s", file=sys.stderr)
            lat = latency_runs(bootstrap, rates, args.seconds, tmp)
    finally:
        if cluster is not None:
            cluster.stop()

    result = {
        "events": args.events,
        "passthrough_eps": round(pt),
        "kairos_eps": round(kairos),
        "kairos_share": round(kairos / pt, 3),
        "passthrough_eps_per_cpu_s": round(pt_cpu),
        "kairos_eps_per_cpu_s": round(kairos_cpu),
        "kairos_cpu_share": round(kairos_cpu / pt_cpu, 3),
        "loadavg_1m_at_end": os.getloadavg()[0],
        "latency": {str(rate): r for rate, r in lat.items()},
        "cpus": os.cpu_count(),
    }
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print()
    print("| measurement | result |")
    print("|---|---|")
    print(f"| bare aiokafka passthrough | {pt:,.0f} events/s |")
    print(f"| Kairos, flight rules, saturation | {kairos:,.0f} events/s ({kairos / pt:.0%}) |")
    print(
        f"| per CPU second (passthrough / Kairos) | {pt_cpu:,.0f} / {kairos_cpu:,.0f} events "
        f"({kairos_cpu / pt_cpu:.0%}) |"
    )
    for rate, r in lat.items():
        print(
            f"| produce→alert at {rate:,} ev/s | p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms "
            f"({r['alerts']:.0f} alerts) |"
        )
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
