"""End-to-end benchmark on a real broker: Kairos against the Kafka client's own limit.

    .venv/bin/python -m bench.e2e                      # starts a local broker for the run
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.e2e --events 200000
    .venv/bin/python -m bench.e2e --rounds 3 --rates "" --compare /tmp/other-tree

Three measurements, in one run:

1. **passthrough**: a bare aiokafka consume → produce loop (getmany, send every record to
   another topic, commit per poll) over ``--events`` pre-loaded events: the client's limit.
2. **kairos**: a ``kairos worker`` (subprocess, one process, memory store) with the
   flight-disruption rules over the same number of pre-loaded flight events, at saturation:
   events/s from the first ingested event until every event has been through detect, and
   events per CPU second of the worker process.
3. **latency**: produce → alert at fixed rates (``--rates``, ``bench.common.paced_stream``):
   one event in ten completes a match whose alert carries the completing event's send time;
   p50/p99 of (receive time − send time), every alert waited for. The same stream also
   runs through ``bench.relay``, a bare aiokafka relay with the worker's two Kafka hops and
   no rules (``--latency-baseline``): the client's latency floor on this machine, and each
   variant's p50/p99 is reported as a ratio to it. ``--latency-repeat N`` runs every
   variant N times, interleaved, and reports the medians. Each run also reports its alerts'
   *last leg* (``last leg p50_ms`` ...): from the alert record's timestamp, set by the
   worker's producer when it sent the alert, to its arrival at the reader; and for the
   workers every *leg* of the alert (``leg source→ingest p99_ms`` ..., see :func:`legs`),
   read back from the source and keyed topics after the run.

``--rounds N`` repeats 1 and 2 N times; ``--compare DIR`` (repeatable) also runs the worker of
another source tree (a copy of the repository) in every round, interleaved with this one
(the order rotates per round), so machine load hits every variant alike. Medians and the
ratio to the passthrough of the same round are reported; on a loaded machine compare events
per CPU second, not events/s.

Results go to stdout (Markdown tables for BENCHMARKS.md) and ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents import wire
from bench import common
from bench.common import (
    ROOT,
    Worker,
    cpu_seconds,
    create_topics,
    histogram_share,
    kafka,
    latency_worker,
    paced_stream,
    summary,
)
from tests.integration.scale_support import read_all

FLIGHT_RULES = ("rebooking-offer.yaml", "service-desk-alert.yaml")


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


def kairos_saturation(
    bootstrap: str, n: int, tmp: Path, root: Path = ROOT, profile: Path | None = None
) -> tuple[float, float]:
    """Events/s of a worker (of the source tree ``root``) over ``n`` pre-loaded flight
    events, and events per CPU second of the worker process. ``profile``: record the worker
    with py-spy into this file (raw format) while it works."""
    suffix = uuid.uuid4().hex[:6]
    src = f"flight-events-{suffix}"
    rules = tmp / f"rules-{suffix}"
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
        tmp / f"worker-saturation-{suffix}.log",
        root,
    )
    try:
        worker.wait_ready()
        spy = None if profile is None else start_py_spy(worker.proc.pid, profile)
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
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes the profile and exits
            spy.wait(60)
        # from the first sample that shows progress to the last (start-up excluded)
        t0, d0, c0 = next(s for s in samples if s[1] > 0)
        return (n - d0) / (samples[-1][0] - t0), (n - d0) / (samples[-1][2] - c0)
    finally:
        worker.stop()


# -- where the worker's CPU goes ------------------------------------------------------------

#: Components of a worker, each a test on one py-spy stack (frames "func (file:line)" joined
#: by ";"): the part of the stack after the last asyncio ``Handle._run`` (the running task),
#: prefixed with "Thread-1;" for Faust's consumer thread. The first match wins.
COMPONENTS: list[tuple[str, Any]] = [
    ("detect: engine process/advance (cep/)", lambda s: "Detector.steps" in s and "(cep/" in s),
    ("detect: watermarks, deadline heaps, own loop", lambda s: "Detector.steps" in s),
    ("flush: rule states to bytes (cep/)", lambda s: "Detector.flush" in s and "(cep/" in s),
    ("flush: key codec, partial-match counts", lambda s: "Detector.flush" in s),
    ("flush: table writes (store + changelog send)", lambda s: ".write (app/faust_app" in s),
    ("flush: history merge, waiting for acks", lambda s: "StateWriter" in s),
    ("detect: keyed message decode (orjson)", lambda s: "decode (agents/wire.py" in s),
    ("detect: detections to CloudEvents + sends", lambda s: "_send_outcome" in s),
    ("detect: Faust agent/stream, counts", lambda s: "Agent._execute_actor" in s),
    ("ingest: rule routing (cep route_report)", lambda s: "IngestService" in s and "(cep/" in s),
    ("ingest: decode, route, batch (agents/ingest.py)", lambda s: "IngestService._process" in s),
    ("ingest: fetch (getmany), commit", lambda s: "IngestService" in s),
    ("ticks", lambda s: "tick_forever" in s),
    ("feed (agents/feed.py)", lambda s: "(agents/feed.py" in s),
    ("rules service", lambda s: "(agents/rules_service.py" in s),
    ("web (the bench polls /api/rules)", lambda s: "RequestHandler" in s or "aiohttp/web" in s),
    ("Faust consumer thread (keyed topic fetch)", lambda s: s.startswith("Thread-1;")),
    ("aiokafka producer sender (all producers)", lambda s: "Sender." in s),
    ("aiokafka fetchers (ingest, feed, rules)", lambda s: "Fetcher." in s),
    ("aiokafka connections (read, parse, coordinator)", lambda s: "(aiokafka/" in s),
    ("Faust services (commit, monitor, conductor)", lambda s: "(faust/" in s or "(mode/" in s),
    ("asyncio event loop, other", lambda s: True),
]


def start_py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (not a project dependency: ``.venv/bin/pip install py-spy``) sampling the
    thread that holds the GIL, 100 times a second: CPU time of Python code, by stack."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    cmd = [exe, "record", "--pid", str(pid), "--gil", "--threads", "--rate", "100"]
    cmd += ["--format", "raw", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def breakdown(profile: Path) -> dict[str, float]:
    """Share of the samples of each of :data:`COMPONENTS` in a raw py-spy profile."""
    counts: dict[str, int] = {}
    total = 0
    for line in profile.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        runs = [i for i, f in enumerate(frames) if f.startswith("Handle._run ")]
        task = ";".join(frames[runs[-1] + 1 :]) if runs else ""
        if "Thread-1" in frames[0]:
            task = "Thread-1;" + task
        name = next(name for name, test in COMPONENTS if test(task))
        counts[name] = counts.get(name, 0) + int(n)
        total += int(n)
    return {name: counts.get(name, 0) / total for name, _ in COMPONENTS if counts.get(name)}


#: The worker's own histograms read around each latency run (keyed-topic messages):
#: the repartition hop (ingest send -> detect agent) and ingest routing -> end of detect.
HOPS = {
    "kairos_keyed_wait_seconds": "hop",
    "kairos_processing_latency_seconds": "ingest->detected",
}
HOP_BOUNDS = (0.01, 0.025, 0.05, 0.1)


class Relay:
    """``bench.relay`` as a subprocess, with the part of :class:`Worker`'s interface the
    latency runs use."""

    def __init__(
        self, bootstrap: str, src: str, out: str, hops: int, log: Path, pipelined: bool = False
    ) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.relay",
                "--bootstrap",
                bootstrap,
                "--src",
                src,
                "--out",
                out,
                "--hops",
                str(hops),
                *(["--pipelined"] if pipelined else []),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._out,
            stdin=subprocess.DEVNULL,
        )

    def wait_ready(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # the relay prints "ready" or exits
        if line.strip() != b"ready":
            self.stop()
            raise SystemExit(f"bench.relay did not start: see {self.log}")

    def histograms(self) -> dict[str, dict[float, float]]:
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


def latency_runs(
    bootstrap: str,
    rates: list[int],
    seconds: float,
    tmp: Path,
    root: Path = ROOT,
    env: dict[str, str] | None = None,
    processing_time: bool = False,
    profile_dir: Path | None = None,
    relay_hops: int = 0,
    relay_pipelined: bool = False,
) -> dict[int, dict[str, float]]:
    """produce → alert latency of one worker at each of ``rates`` (events/s).

    ``env``: extra settings for the worker; ``processing_time``: the rule without ``time``;
    ``profile_dir``: record the worker with py-spy during each rate's run (``lat-RATE.txt``)
    and add where its CPU went to the results (``cpu:`` keys, shares of the samples);
    ``relay_hops`` (1 or 2): run ``bench.relay`` (a bare aiokafka relay with that many Kafka
    hops, no rules) in place of the worker, the client's latency floor."""
    worker: Worker | Relay
    if relay_hops:
        suffix = uuid.uuid4().hex[:6]
        src, out = f"lat-src-{suffix}", f"lat-out-{suffix}"
        asyncio.run(create_topics(bootstrap, [src, out]))
        worker = Relay(
            bootstrap, src, out, relay_hops, tmp / f"relay-{suffix}.log", relay_pipelined
        )
    else:
        worker, src, out = latency_worker(bootstrap, tmp, "lat", root, processing_time, env)
    results: dict[int, dict[str, float]] = {}
    try:
        worker.wait_ready()
        asyncio.run(paced_stream(bootstrap, src, out, 200, 2))  # warm-up
        for rate in rates:
            before = worker.histograms()
            spy = None
            if profile_dir is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
                spy = start_py_spy(worker.proc.pid, profile_dir / f"lat-{rate}.txt")
            cpu0 = cpu_seconds(worker.proc.pid)
            alerts: dict[str, tuple[float, int, float]] = {}
            results[rate] = summary(
                asyncio.run(paced_stream(bootstrap, src, out, rate, seconds, alerts=alerts))
            )
            tail = [received - alert_ts for _sent, alert_ts, received in alerts.values()]
            # the alert's last leg: its record's timestamp (the worker's send) -> the reader
            results[rate] |= {f"last leg {k}": v for k, v in summary(tail).items() if k != "n"}
            # the worker's CPU per event sent (until its last alert: idle ticks included)
            results[rate]["worker_cpu_us_per_event"] = round(
                (cpu_seconds(worker.proc.pid) - cpu0) / int(rate * seconds) * 1e6, 1
            )
            after = worker.histograms()
            if spy is not None and profile_dir is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
                shares = breakdown(profile_dir / f"lat-{rate}.txt")
                results[rate] |= {f"cpu: {k}": round(100 * v, 1) for k, v in shares.items()}
            if isinstance(worker, Worker):
                results[rate] |= asyncio.run(legs(bootstrap, src, f"{worker.app_id}-keyed", alerts))
            for name, label in HOPS.items() if not relay_hops else ():
                share = histogram_share(before.get(name, {}), after.get(name, {}), HOP_BOUNDS)
                results[rate] |= {f"{label} {k}": v for k, v in share.items()}
            print(f"  {rate} ev/s: {results[rate]}", file=sys.stderr)
    finally:
        worker.stop()
    return results


LEGS = ("source→ingest", "ingest→keyed", "keyed→alert", "alert→reader")


async def legs(
    bootstrap: str, src: str, keyed: str, alerts: dict[str, tuple[float, int, float]]
) -> dict[str, float]:
    """Where each alert's latency went, p50 and p99 per leg, in ms, from the timestamps the
    records carry (all clocks are this machine's):

    * ``source→ingest``: the completing event's source record (the load generator's send) to
      the ingest's poll of it (the keyed batch's ``ingest_ms``): the broker, the ingest's
      fetch and its linger;
    * ``ingest→keyed``: to the keyed batch's send (routing and batching);
    * ``keyed→alert``: to the alert's send (Faust's fetch of the keyed topic and detect);
    * ``alert→reader``: to its arrival at the load generator's reader.
    """
    sent_at = {orjson.loads(r.value)["id"]: r.timestamp for r in await read_all(bootstrap, src)}
    polled: dict[str, tuple[int, int]] = {}
    for record in await read_all(bootstrap, keyed):
        message = wire.decode(record.value)
        if isinstance(message, wire.Batch):
            for _key, _src, _offset, ingest_ms, routes, _event in message.events:
                polled[routes[0][2]] = (ingest_ms, record.timestamp)
    spans: list[list[float]] = [[] for _ in LEGS]
    for eid, (_sent, alert_ts, received) in alerts.items():
        if eid not in polled or eid not in sent_at:
            continue
        ingest_ms, keyed_ts = polled[eid]
        points = (sent_at[eid], ingest_ms, keyed_ts, alert_ts, received)
        for leg, (a, b) in zip(spans, itertools.pairwise(points), strict=True):
            leg.append(b - a)
    out: dict[str, float] = {}
    for name, values in zip(LEGS, spans, strict=True):
        if values:
            out[f"leg {name} p50_ms"] = round(statistics.median(values), 1)
            out[f"leg {name} p99_ms"] = round(common.pct(values, 0.99), 1)
    return out


def relay_name(hops: int, pipelined: bool = False) -> str:
    kind = "pipelined relay" if pipelined else "relay"
    return f"bare aiokafka {kind}, {hops} hop{'s' if hops > 1 else ''}"


def combine(results: list[dict[str, float]]) -> dict[str, Any]:
    """One rate's repetitions as one result: the medians of p50, p99 and CPU per event, the
    largest max, and every repetition under ``runs``."""
    if len(results) == 1:
        return results[0]
    return {
        "n": sum(r["n"] for r in results),
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "max_ms": max(r["max_ms"] for r in results),
        "worker_cpu_us_per_event": statistics.median(r["worker_cpu_us_per_event"] for r in results),
        "runs": results,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events per throughput run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="throughput rounds (interleaved; 0: latency runs only)",
    )
    common.add_compare_option(parser)
    parser.add_argument("--rates", default="1000,5000", help="fixed rates for the latency runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each latency run")
    parser.add_argument(
        "--latency-env",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="a further latency run of this tree's worker with these settings (repeatable), "
        "e.g. KAIROS_TICK_INTERVAL=0.05",
    )
    parser.add_argument(
        "--latency-time",
        choices=["event", "processing"],
        default="event",
        help="the latency rule in event time (default, watermarks) or processing time",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="record this tree's worker with py-spy in the first round (raw stacks into FILE) "
        "and print where its CPU goes",
    )
    parser.add_argument(
        "--latency-profile",
        type=Path,
        metavar="DIR",
        help="record this tree's latency worker with py-spy at each rate (raw stacks into "
        "DIR/lat-RATE.txt) and report where its CPU goes per rate",
    )
    parser.add_argument(
        "--latency-baseline",
        type=int,
        choices=(0, 1, 2),
        default=2,
        metavar="HOPS",
        help="latency runs of a bare aiokafka relay (bench.relay) with this many Kafka hops too, "
        "the client's floor on this machine (default 2, the worker's path; 0: none)",
    )
    parser.add_argument(
        "--latency-baseline-pipelined",
        action="store_true",
        help="also the relay with --pipelined: it polls again before the previous polls are "
        "acknowledged, as the worker's ingest does (over --latency-baseline hops, 2 if 0)",
    )
    parser.add_argument(
        "--latency-repeat",
        type=int,
        default=1,
        metavar="N",
        help="run every latency variant N times, interleaved (the order rotates), and report "
        "the medians of p50 and p99",
    )
    parser.add_argument("--json", type=Path, help="write the results here too")
    common.add_producer_slot_option(parser)
    args = parser.parse_args()
    common.PRODUCER_SLOT_MS = args.producer_slot_ms
    rates = [int(r) for r in args.rates.split(",") if r]
    variants = common.compared_trees(parser, args.compare)

    rounds: list[dict[str, Any]] = []
    lat: dict[str, dict[int, dict[str, Any]]] = {}
    with kafka() as bootstrap, tempfile.TemporaryDirectory(prefix="kairos-bench-") as d:
        tmp = Path(d)
        print(f"  worker logs in {tmp}", file=sys.stderr)
        names = list(variants)
        for r in range(args.rounds):
            row: dict[str, Any] = {"loadavg_1m": os.getloadavg()[0]}
            suffix = uuid.uuid4().hex[:6]
            src, dst = f"pt-src-{suffix}", f"pt-dst-{suffix}"
            asyncio.run(create_topics(bootstrap, [src, dst]))
            print(f"  round {r + 1}: preloading {args.events} events ...", file=sys.stderr)
            asyncio.run(preload(bootstrap, src, flight_events(args.events, 5000), "passenger_id"))
            pt, pt_cpu = asyncio.run(passthrough(bootstrap, src, dst, args.events))
            row["passthrough"] = {"eps": round(pt), "eps_per_cpu_s": round(pt_cpu)}
            print(f"  passthrough: {pt:,.0f} ev/s, {pt_cpu:,.0f} ev/CPU-s", file=sys.stderr)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                profile = args.profile if r == 0 and name == "this tree" else None
                eps, eps_cpu = kairos_saturation(
                    bootstrap, args.events, tmp, variants[name], profile
                )
                row[name] = {
                    "eps": round(eps),
                    "eps_per_cpu_s": round(eps_cpu),
                    "share": round(eps / pt, 4),
                    "cpu_share": round(eps_cpu / pt_cpu, 4),
                }
                print(
                    f"  kairos ({name}): {eps:,.0f} ev/s, {eps_cpu:,.0f} ev/CPU-s "
                    f"({eps_cpu / pt_cpu:.1%} of the passthrough per CPU-s)",
                    file=sys.stderr,
                )
            rounds.append(row)
        processing = args.latency_time == "processing"
        # (name, keyword arguments of latency_runs) of every latency variant
        specs: list[tuple[str, dict[str, Any]]] = [
            (name, {"root": root}) for name, root in variants.items()
        ]
        for spec in args.latency_env:
            env = dict(item.split("=", 1) for item in spec.split(","))
            specs.append((f"this tree, {spec}", {"env": env}))
        hops = args.latency_baseline
        if hops:
            specs.append((relay_name(hops), {"relay_hops": hops}))
        if args.latency_baseline_pipelined:
            hops = hops or 2  # also without the serial relay: over the worker's two hops
            specs.append(
                (relay_name(hops, pipelined=True), {"relay_hops": hops, "relay_pipelined": True})
            )
        runs: dict[str, list[dict[int, dict[str, float]]]] = {}
        for rep in range(args.latency_repeat if rates else 0):
            shift = rep % len(specs)
            for name, kwargs in specs[shift:] + specs[:shift]:
                profile = args.latency_profile if rep == 0 and name == "this tree" else None
                print(f"  latency, {name} (repetition {rep + 1}) ...", file=sys.stderr)
                runs.setdefault(name, []).append(
                    latency_runs(
                        bootstrap,
                        rates,
                        args.seconds,
                        tmp,
                        processing_time=processing,
                        profile_dir=profile,
                        **kwargs,
                    )
                )
        lat = {
            name: {rate: combine([run[rate] for run in done]) for rate in rates}
            for name, done in runs.items()
        }

    def median(name: str, field: str) -> float:
        return statistics.median(row[name][field] for row in rounds)

    result = {
        "events": args.events,
        "rounds": rounds,
        "medians": {
            name: {
                field: median(name, field)
                for field in ("eps", "eps_per_cpu_s", "share", "cpu_share")
                if field in rounds[0][name]
            }
            for name in ["passthrough", *variants]
        }
        if rounds
        else {},
        "latency": {name: {str(rate): r for rate, r in v.items()} for name, v in lat.items()},
        "cpus": os.cpu_count(),
    }
    if args.profile is not None:
        result["profile"] = {k: round(v, 4) for k, v in breakdown(args.profile).items()}
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    print()
    print_tables(result, rounds, variants, lat)
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


def print_tables(
    result: dict[str, Any],
    rounds: list[dict[str, Any]],
    variants: dict[str, Path],
    lat: dict[str, dict[int, dict[str, Any]]],
) -> None:
    """The run as markdown tables (throughput rounds, latencies, profile)."""
    if rounds:
        print_rounds(result, rounds, variants)
    base = next((v for name, v in lat.items() if name.startswith("bare aiokafka relay")), None)
    for name, per_rate in lat.items():
        for rate, r in per_rate.items():
            line = (
                f"| produce→alert at {rate:,} ev/s ({name}) | p50 {r['p50_ms']:.1f} ms, "
                f"p99 {r['p99_ms']:.1f} ms ({r['n']:.0f} alerts"
            )
            if "runs" in r:
                each = ", ".join(f"{x['p99_ms']:.0f}" for x in r["runs"])
                line += f"; medians of {len(r['runs'])} runs, p99s {each}"
            line += ") |"
            if base is not None and per_rate is not base and rate in base:
                b = base[rate]
                line += f" {r['p50_ms'] / b['p50_ms']:.2f}x / {r['p99_ms'] / b['p99_ms']:.2f}x the relay |"
            print(line)
    leg_keys = [f"leg {leg} p{q}_ms" for leg in LEGS for q in (50, 99)]
    rows = []
    for name, per_rate in lat.items():
        for rate, r in per_rate.items():
            runs = r.get("runs", [r])
            if all(k in run for run in runs for k in leg_keys):
                cells = [statistics.median(run[k] for run in runs) for k in leg_keys]
                pairs = zip(cells[::2], cells[1::2], strict=True)
                rows.append(
                    f"| {rate:,} ev/s ({name}) | "
                    + " | ".join(f"{p50:.0f} / {p99:.0f}" for p50, p99 in pairs)
                    + " |"
                )
    if rows:
        print("\n| legs, p50 / p99 ms (medians of the runs) | " + " | ".join(LEGS) + " |")
        print("|---|" + "---:|" * len(LEGS))
        print("\n".join(rows))
    if "profile" in result:
        print("\n| component (py-spy, this tree, round 1; % of the worker's sampled CPU) | share |")
        print("|---|---:|")
        for name, share in result["profile"].items():
            print(f"| {name} | {share:.1%} |")


def print_rounds(
    result: dict[str, Any], rounds: list[dict[str, Any]], variants: dict[str, Path]
) -> None:
    print("| round | load (1 min) | passthrough | " + " | ".join(variants) + " |")
    print("|---|---|---|" + "---|" * len(variants))
    for i, row in enumerate(rounds, 1):
        cells = [
            f"{row[name]['eps']:,} ev/s; {row[name]['eps_per_cpu_s']:,} ev/CPU-s "
            f"({row[name]['cpu_share']:.1%})"
            for name in variants
        ]
        pt_row = row["passthrough"]
        print(
            f"| {i} | {row['loadavg_1m']:.1f} | {pt_row['eps']:,} ev/s; "
            f"{pt_row['eps_per_cpu_s']:,} ev/CPU-s | " + " | ".join(cells) + " |"
        )
    med = result["medians"]
    cells = [
        f"{med[name]['eps_per_cpu_s']:,.0f} ev/CPU-s ({med[name]['cpu_share']:.1%})"
        for name in variants
    ]
    print(
        f"| median | | {med['passthrough']['eps_per_cpu_s']:,.0f} ev/CPU-s | "
        + " | ".join(cells)
        + " |"
    )


if __name__ == "__main__":
    sys.exit(main())
