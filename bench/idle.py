"""What an idle worker costs: the CPU share of a ``kairos worker`` with nothing to do.

    .venv/bin/python -m bench.idle                          # starts a local broker for the run
    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 .venv/bin/python -m bench.idle --compare /tmp/base

Per round and tree (this checkout, and each ``--compare`` tree, interleaved): one worker with
the latency rule of :mod:`bench.e2e` (processing time), a 2 s warm-up stream at 200 events/s,
3 s to settle, then the worker's CPU time (user + system, from ``/proc``) over ``--seconds``
of no events, as a share of one core. A 5 s stream at 200 events/s follows, to check that
the worker still answers at once after being idle (p50/p99 produce → alert). Reported per
round and as medians.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    add_compare_option,
    compared_trees,
    cpu_seconds,
    kafka,
    latency_worker,
    paced_stream,
    pct,
)


def measure(bootstrap: str, root: Path, seconds: float, tmp: Path) -> dict[str, float]:
    worker, src, out = latency_worker(bootstrap, tmp, "idle", root, processing_time=True)
    try:
        worker.wait_ready()
        asyncio.run(paced_stream(bootstrap, src, out, 200, 2))
        time.sleep(3)
        cpu0, t0 = cpu_seconds(worker.proc.pid), time.monotonic()
        time.sleep(seconds)
        share = (cpu_seconds(worker.proc.pid) - cpu0) / (time.monotonic() - t0)
        after = asyncio.run(paced_stream(bootstrap, src, out, 200, 5))
    finally:
        worker.stop()
    return {
        "idle_cpu_percent": round(100 * share, 1),
        "then_p50_ms": round(statistics.median(after), 1),
        "then_p99_ms": round(pct(after, 0.99), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="idle time measured")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (trees interleaved)")
    add_compare_option(parser)
    args = parser.parse_args()
    trees = compared_trees(parser, args.compare)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with kafka() as bootstrap, tempfile.TemporaryDirectory(prefix="kairos-bench-idle-") as d:
        names = list(trees)
        for r in range(args.rounds):
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                row = measure(bootstrap, trees[name], args.seconds, Path(d))
                results[name].append(row)
                print(f"  round {r + 1}, {name}: {row}", file=sys.stderr)
    print("| tree | idle CPU (% of a core), per round | median | then 200 ev/s p50 / p99 |")
    print("|---|---|---:|---|")
    for name, rows in results.items():
        shares = ", ".join(f"{x['idle_cpu_percent']:.1f}" for x in rows)
        median = statistics.median(x["idle_cpu_percent"] for x in rows)
        after = "; ".join(f"{x['then_p50_ms']:.0f} / {x['then_p99_ms']:.0f} ms" for x in rows)
        print(f"| {name} | {shares} | {median:.1f} | {after} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
