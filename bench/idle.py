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
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import LATENCY_RULE, ROOT, Worker, cpu_seconds, create_topics, paced_stream, pct


def measure(bootstrap: str, root: Path, seconds: float, tmp: Path) -> dict[str, float]:
    suffix = uuid.uuid4().hex[:6]
    src, out = f"idle-src-{suffix}", f"idle-out-{suffix}"
    asyncio.run(create_topics(bootstrap, [src, out]))
    rules = tmp / f"rules-{suffix}"
    rules.mkdir()
    rule = LATENCY_RULE.format(source=src, out=out).replace("time: ts\n", "")
    (rules / "latency.yaml").write_text(rule)
    worker = Worker(
        bootstrap,
        {
            "KAIROS_APP_ID": f"bench-idle-{suffix}",
            "KAIROS_RULES_DIR": str(rules),
            "KAIROS_RULES_TOPIC": f"bench-rules-{suffix}",
        },
        tmp / f"worker-{suffix}.log",
        root,
    )
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
    parser.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another source tree whose worker is measured in every round too (repeatable)",
    )
    args = parser.parse_args()
    trees = {"this tree": ROOT, **{str(p): p.resolve() for p in args.compare}}
    cluster = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from app.kafka import KafkaCluster

        cluster = KafkaCluster(brokers=1)
        cluster.start()
        bootstrap = cluster.bootstrap
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    try:
        with tempfile.TemporaryDirectory(prefix="kairos-bench-idle-") as d:
            names = list(trees)
            for r in range(args.rounds):
                shift = r % len(names)
                for name in names[shift:] + names[:shift]:
                    row = measure(bootstrap, trees[name], args.seconds, Path(d))
                    results[name].append(row)
                    print(f"  round {r + 1}, {name}: {row}", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
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
