"""Benchmark: the flight-disruption rules through ``RuleRunner``, offline, as detect drives it.

    .venv/bin/python -m bench.rules_flights [--events 40000] [--rounds 3] [--against DIR]

The events come from the flight simulator (``app.simulate``, seeded; about 1 % late and 20 %
out of order, as on the wire), the rules from ``scenarios/flights/rules``. The loop does what
``agents.detect.Detector`` does per event, minus Kafka, decoding and the state table: for each
rule the event is routed to, ``observe`` (the rule's watermark), ``process`` with that
watermark, ``next_deadline`` into a heap; every ``--batch`` events the keys whose deadline
passed are ``advance``d. Routing (``RuleRunner.route``, the ingest's work) is done before the
clock starts. CPU time (``time.process_time``) of the loop, so the figure is the rule engine's
share of a worker's per-event cost (engine, event-time buffer, CEL, detections).

``--against DIR`` also runs ``DIR/cep`` (a copy of the code before a change) in alternating
rounds on the same events and checks that both produce the same detections and state bytes.
``--once before|current|none`` runs one variant once (``none``: only the set-up) for
``valgrind --tool=callgrind``: the difference of two counts is the loop's instructions.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import heapq
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.simulate import simulate  # noqa: E402
from bench.compare import load_copy  # noqa: E402

RULES = ROOT / "scenarios" / "flights" / "rules"
TOPIC = "flight-events"


def make_input(runner: Any, events: int, seed: int) -> tuple[list, dict[str, dict[str, Any]]]:
    """(routed events, context by key): what the ingest hands to detect."""
    sim = simulate("flights", entities=max(8, events // 5), seed=seed)
    context: dict[str, dict[str, Any]] = {}
    for rec in sim.context:
        for _rule, key in runner.context_routes("passenger-profiles", rec):
            context.setdefault(key, {}).update(rec)
    routed = []
    for ev in sim.events():
        routes = runner.route(TOPIC, ev)
        if routes:
            routed.append((ev, [tuple(r) for r in routes]))
    return routed, context


def drive(runner: Any, routed: list, context: dict, batch: int) -> dict[str, Any]:
    """The detect loop over ``routed``; returns CPU seconds and digests of what it produced."""
    states: dict[tuple[str, str], Any] = {}
    heaps: dict[str, list[tuple[float, str]]] = {}
    due_at: dict[tuple[str, str], float] = {}
    found: list[Any] = []
    process, advance, observe = runner.process, runner.advance, runner.observe
    next_deadline, new_state = runner.next_deadline, runner.new_state
    gc.collect()
    t0 = time.process_time()
    for i, (event, routes) in enumerate(routed):
        for name, key, ts, eid in routes:
            st = states.get((name, key))
            if st is None:
                st = states[name, key] = new_state(name)
            wm = observe(name, ts)
            out = process(name, st, key, event, ts, context.get(key), wm, eid)
            if out:
                found.extend(out)
            d = next_deadline(name, st)
            if d is not None and due_at.get((name, key)) != d:
                due_at[name, key] = d
                heapq.heappush(heaps.setdefault(name, []), (d, key))
        if i % batch == batch - 1:
            for name, heap in heaps.items():
                wm = runner.watermark(name)
                while heap and heap[0][0] <= wm:
                    d, key = heapq.heappop(heap)
                    if due_at.get((name, key)) != d:
                        continue
                    del due_at[name, key]
                    st = states[name, key]
                    out = advance(name, st, key, wm, context.get(key))
                    if out:
                        found.extend(out)
                    d2 = next_deadline(name, st)
                    if d2 is not None:
                        due_at[name, key] = d2
                        heapq.heappush(heap, (d2, key))
    cpu = time.process_time() - t0
    det = hashlib.sha256()
    kinds: dict[str, int] = {}
    for d in found:
        kinds[d.kind] = kinds.get(d.kind, 0) + 1
        det.update(repr((d.rule, d.key, d.kind, d.stages, d.start, d.end, d.data)).encode())
    blobs = hashlib.sha256()
    for (name, key), st in sorted(states.items()):
        blobs.update(f"{name}/{key}".encode())
        blobs.update(runner.state_to_bytes(name, st))
    return {"cpu": cpu, "kinds": kinds, "detections": det.hexdigest(), "state": blobs.hexdigest()}


def runner_of(pkg: Any) -> Any:
    rules = []
    for path in sorted(RULES.glob("*.yaml")):
        rules.extend(pkg.rules.load_rules_text(path.read_text(), path.name))
    return pkg.rules.RuleRunner(rules)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=40_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=400, help="events between deadline sweeps")
    ap.add_argument("--against", help="directory holding a copy of cep/ to compare with")
    ap.add_argument(
        "--once",
        choices=("before", "current", "none"),
        help="run only this variant once, without report (for callgrind instruction counts; "
        "'none' builds the input and runners only, to subtract)",
    )
    args = ap.parse_args(argv)

    import cep
    import cep.rules

    variants = {"current": cep}
    if args.against:
        variants = {"before": load_copy(args.against), "current": cep}
    routed, context = make_input(runner_of(cep), args.events, args.seed)
    if args.once:
        runners = {v: runner_of(pkg) for v, pkg in variants.items()}
        if args.once != "none":
            res = drive(runners[args.once], routed, context, args.batch)
            print(args.once, res["kinds"], res["detections"][:16], res["state"][:16])
        return 0
    n = sum(len(r) for _e, r in routed)
    print(f"- command: `python -m bench.rules_flights {' '.join(argv or sys.argv[1:])}`")
    print(f"- machine: {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"- load average at start: {os.getloadavg()}")
    print(f"- {len(routed)} events, {n} (rule, event) pairs, {len(context)} keys with context\n")
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    last: dict[str, dict[str, Any]] = {}
    for r in range(args.rounds):
        order = list(variants) if r % 2 == 0 else list(variants)[::-1]
        for v in order:
            res = drive(runner_of(variants[v]), routed, context, args.batch)
            cpus[v].append(res["cpu"])
            last[v] = res
    print("| variant | events / CPU-s (median) | rounds | detections |")
    print("|---|---:|---|---|")
    for v, times in cpus.items():
        rates = [len(routed) / t for t in times]
        print(
            f"| {v} | {len(routed) / statistics.median(times):,.0f} "
            f"| {', '.join(f'{x:,.0f}' for x in rates)} | {last[v]['kinds']} |"
        )
    same = len({(x["detections"], x["state"]) for x in last.values()}) == 1
    if len(variants) > 1:
        ratio = statistics.median(cpus["before"]) / statistics.median(cpus["current"])
        print(f"\ncurrent / before speed: {ratio:.2f}x; same detections and state bytes: {same}")
    print(f"load average at end: {os.getloadavg()}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
