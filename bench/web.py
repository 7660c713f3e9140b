"""Web view under load: key lookups while the stream runs, and what they cost the stream.

    .venv/bin/python -m bench.web                      # starts a local broker for the run
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.web --rate 5000 --lookups 100

One ``kairos worker`` (subprocess, memory store) runs the latency rule of ``bench.e2e``: a paced
producer sends ``--rate`` events/s, one in ten completes a match whose alert carries the send
time of the completing event, and a consumer measures produce → alert latency. Rounds
alternate between

- **stream**: the paced stream alone, and
- **stream + lookups**: the same stream while a separate process sends ``--lookups``
  ``GET /api/keys/{key}`` per second (paced, open loop) for keys that hold state (80 %) or do
  not exist (20 %, answered 404), measuring each request's latency.

Before the rounds, the lookup load runs once with no stream (what the web view itself costs).
``--root`` runs the worker of another source tree (a clean checkout, for before/after runs in
the same time window); ``--loop-stats DIR`` times every callback on the worker's event loops
(:mod:`bench.looplag`, CPU and wall time) and reports, per kind of round, the distribution
of the callbacks of at least 1 ms CPU and the top ones.
Reported: lookup p50/p99/max (alone, and over all rounds with the stream), and the stream's
p50/p99 with and without lookups; every alert of a round is waited for, none is dropped. Alternating rounds on the same worker keeps drift (JIT-free Python, but page
cache, broker segments, other load on the machine) from favouring one side.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench import common, looplag
from bench.common import (
    LATENCY_RULE,
    ROOT,
    Worker,
    cpu_seconds,
    create_topics,
    kafka,
    paced_stream,
    summary,
)

# -- the lookup load (its own process: its CPU time is not the stream producer's) -------------


async def _lookups(base: str, keys: list[str], rate: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    rnd = random.Random(7)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one(key: str) -> None:
            t0 = time.perf_counter()
            async with http.get(f"{base}/api/keys/{key}") as resp:
                await resp.read()
            latencies.append((time.perf_counter() - t0) * 1000)
            status = str(resp.status)
            statuses[status] = statuses.get(status, 0) + 1

        tasks = []
        start = time.perf_counter()
        for i in range(int(rate * seconds)):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = rnd.choice(keys) if rnd.random() < 0.8 else f"missing-{i}"
            tasks.append(asyncio.create_task(one(key)))
        await asyncio.gather(*tasks)
    return {"latencies": latencies, "statuses": statuses}


def _lookup_process(base: str, keys: list[str], rate: float, seconds: float, out: Any) -> None:
    out.put(asyncio.run(_lookups(base, keys, rate, seconds)))


# -- the run ----------------------------------------------------------------------------------


def drain(worker: Worker, sent: int, timeout: float = 300) -> float:
    """Wait until the worker has processed ``sent`` events, so rounds do not overlap.

    Returns the seconds waited: more than a moment means the rate was above what the worker
    sustains, and that round's latencies measure its backlog.
    """
    start = time.monotonic()
    while worker.events_done("bench-latency") < sent:
        if time.monotonic() - start > timeout:
            raise SystemExit(
                f"the worker did not catch up within {timeout:.0f} s; log {worker.log}"
            )
        time.sleep(0.2)
    return time.monotonic() - start


def lookups_alone(base: str, keys: list[str], rate: float, seconds: float) -> list[float]:
    """The lookup load with no stream running: what the web view itself costs."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_lookup_process, args=(base, keys, rate, seconds, queue))
    proc.start()
    got = queue.get(timeout=seconds + 60)
    proc.join(30)
    return got["latencies"]


def known_keys(worker: Worker) -> list[str]:
    doc = worker.get("/api/matches?limit=1000") or {"detections": []}
    return sorted({d["subject"] for d in doc["detections"]})


def run(
    bootstrap: str,
    rate: int,
    lookups: int,
    seconds: float,
    rounds: int,
    tmp: Path,
    root: Path = ROOT,
    loop_stats: Path | None = None,
) -> dict:
    suffix = uuid.uuid4().hex[:6]
    src, out = f"webb-src-{suffix}", f"webb-out-{suffix}"
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "latency.yaml").write_text(LATENCY_RULE.format(source=src, out=out))
    asyncio.run(create_topics(bootstrap, [src, out]))
    env = {
        "KAIROS_APP_ID": f"bench-web-{suffix}",
        "KAIROS_RULES_DIR": str(rules),
        # a broker shared by several runs (KAFKA_BOOTSTRAP_SERVERS) holds each run's rule
        "KAIROS_RULES_TOPIC": f"bench-web-rules-{suffix}",
        "KAIROS_RULES_STATUS_TOPIC": f"bench-web-rules-status-{suffix}",
    }
    if loop_stats is not None:
        loop_stats.mkdir(parents=True, exist_ok=True)
        loop_stats = loop_stats / f"loop-{suffix}.json"
        env["KAIROS_LOOP_STATS"] = str(loop_stats)
        env["PYTHONPATH"] = f"{root}{os.pathsep}{ROOT / 'bench' / 'looplag_hook'}"
    worker = Worker(bootstrap, env, tmp / "worker.log", root=root)
    windows: dict[str, list[tuple[float, float]]] = {"stream": [], "stream + lookups": []}
    base = f"http://127.0.0.1:{worker.port}"
    stream: dict[str, list[float]] = {"stream": [], "stream + lookups": []}
    lookup_ms: list[float] = []
    statuses: dict[str, int] = {}
    sent = 0
    catch_up: list[float] = []
    try:
        worker.wait_ready()
        asyncio.run(paced_stream(bootstrap, src, out, 500, 4))  # warm-up: also creates keys
        sent += 2000
        drain(worker, sent)
        keys = known_keys(worker)
        if not keys:
            raise SystemExit(f"no detections after the warm-up; log {worker.log}")
        t0 = time.time()
        idle = lookups_alone(base, keys, lookups, seconds)
        windows["lookups alone"] = [(t0, time.time())]
        print(f"  lookups alone: {summary(idle)}", file=sys.stderr)
        cpu0, sent0 = cpu_seconds(worker.proc.pid), sent
        for r in range(rounds):
            for mode in ("stream", "stream + lookups"):
                proc = None
                queue: Any = None
                if mode == "stream + lookups":
                    queue = mp.get_context("spawn").Queue()
                    proc = mp.get_context("spawn").Process(
                        target=_lookup_process, args=(base, keys, lookups, seconds, queue)
                    )
                    proc.start()
                t0 = time.time()
                lat = asyncio.run(paced_stream(bootstrap, src, out, rate, seconds))
                windows[mode].append((t0, time.time()))
                sent += int(rate * seconds)
                stream[mode] += lat
                line = f"  round {r + 1} {mode}: stream {summary(lat)}"
                if proc is not None:
                    got = queue.get(timeout=seconds + 60)
                    proc.join(30)
                    lookup_ms += got["latencies"]
                    for status, n in got["statuses"].items():
                        statuses[status] = statuses.get(status, 0) + n
                    line += f"; lookups {summary(got['latencies'])} {got['statuses']}"
                print(line, file=sys.stderr)
                behind = drain(worker, sent)
                catch_up.append(round(behind, 1))
                if behind > 1:
                    print(f"  (the worker needed {behind:.1f} s more to catch up)", file=sys.stderr)
                keys = known_keys(worker) or keys
        # the worker's CPU per event over the rounds (lookups included): what saturates it
        cpu_us = (cpu_seconds(worker.proc.pid) - cpu0) / (sent - sent0) * 1e6
    finally:
        worker.stop()
    loop = loop_report(loop_stats, windows) if loop_stats is not None else None
    return {
        "rate_eps": rate,
        "lookups_per_s": lookups,
        "seconds_per_round": seconds,
        "rounds": rounds,
        "lookup_alone": summary(idle),
        "lookup": summary(lookup_ms),
        "lookup_statuses": statuses,
        "stream": summary(stream["stream"]),
        "stream_with_lookups": summary(stream["stream + lookups"]),
        "catch_up_s": catch_up,
        "worker_cpu_us_per_event": round(cpu_us, 1),
        "cpus": os.cpu_count(),
        "root": str(root),
        "loop": loop,
    }


def loop_report(path: Path, windows: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """The worker's event-loop callbacks (>= 1 ms CPU) per kind of round (bench.looplag)."""
    if not path.exists():
        return {"error": f"the worker wrote no {path} (did it exit normally?)"}
    doc = orjson.loads(path.read_bytes())
    out: dict[str, Any] = {"file": str(path), "threads": doc["threads"]}
    for mode, spans in windows.items():
        kept = [k for k in doc["kept"] if any(a <= k[0] <= b for a, b in spans)]
        samples = {
            stack: [t for t in times if any(a <= t <= b for a, b in spans)]
            for stack, times in doc.get("samples", {}).items()
        }
        pauses = [g for g in doc.get("gc", []) if any(a <= g[0] <= b for a, b in spans)]
        out[mode] = looplag.report({**doc, "kept": kept, "samples": samples, "gc": pauses})
        out[mode]["seconds"] = round(sum(b - a for a, b in spans), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=5000, help="stream events/s")
    parser.add_argument("--lookups", type=int, default=100, help="key lookups/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each kind")
    parser.add_argument("--json", type=Path, help="write the results here too")
    common.add_producer_slot_option(parser)
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="source tree of the worker (default: this one)"
    )
    parser.add_argument(
        "--loop-stats",
        type=Path,
        metavar="DIR",
        help="time the worker's event-loop callbacks (bench.looplag); files go to DIR",
    )
    args = parser.parse_args()
    common.PRODUCER_SLOT_MS = args.producer_slot_ms

    with kafka() as bootstrap, tempfile.TemporaryDirectory(prefix="kairos-bench-web-") as d:
        print(f"  worker log in {d}", file=sys.stderr)
        result = run(
            bootstrap,
            args.rate,
            args.lookups,
            args.seconds,
            args.rounds,
            Path(d),
            args.root.resolve(),
            args.loop_stats,
        )

    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    s, sl, lk = result["stream"], result["stream_with_lookups"], result["lookup"]
    rise = (sl["p99_ms"] - s["p99_ms"]) / s["p99_ms"] * 100
    print()
    print("| measurement | p50 | p99 | max | samples |")
    print("|---|---:|---:|---:|---:|")
    la = result["lookup_alone"]
    print(
        f"| key lookup at {args.lookups} req/s, no stream | {la['p50_ms']:.1f} ms | "
        f"{la['p99_ms']:.1f} ms | {la['max_ms']:.1f} ms | {la['n']} |"
    )
    print(
        f"| key lookup at {args.lookups} req/s (stream at {args.rate:,} ev/s) | "
        f"{lk['p50_ms']:.1f} ms | {lk['p99_ms']:.1f} ms | {lk['max_ms']:.1f} ms | {lk['n']} |"
    )
    for name, r in (("stream alone", s), ("stream with lookups", sl)):
        print(
            f"| produce→alert, {name} | {r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | "
            f"{r['max_ms']:.1f} ms | {r['n']} |"
        )
    print(f"\nstream p99 change with lookups: {rise:+.1f} %")
    print(
        f"worker CPU per event: {result['worker_cpu_us_per_event']} µs; seconds to catch up "
        f"after each round: {result['catch_up_s']}"
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
