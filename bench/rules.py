"""Benchmark: pattern (a) as a declarative rule (CEL conditions) vs the same pattern with
Python callables, in one run, on the same events.

Pattern (a): three stages joined by followed_by, within 10 minutes, 10 000 keys.
Each event carries 12 fields; the conditions read two of them.

    .venv/bin/python bench/rules.py [--events 200000] [--keys 10000] [--seed 7]

Variants (all event time, through the engine's EventTimeProcessor, one state per key):
  callables     Pattern DSL with lambdas (and the same guards the rule compiler derives)
  rule          the rule through RuleRunner.route + RuleRunner.process (the runtime's path)
  rule-engine   the rule's compiled NFA with its CEL conditions, without the runner
  naive-cel     CEL evaluated on the whole event converted on every call, no guards
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cel

from cep import EventTimeProcessor, Pattern, compile_pattern
from cep.rules import RuleRunner, load_rules_text

WITHIN_MS = 600_000
RULE = """\
name: pattern-a
source: events
key: key
id: id
time: ts
within: 10m
stages:
  - name: a
    where: event.type == 'A' && event.value > 10
  - name: b
    where: event.type == 'B' && event.value > 20
  - name: c
    where: event.type == 'C' && event.value < 90
emit: {kind: alert, topic: alerts, data: {first: "stages.a[0].id", last: "stages.c[0].id"}}
"""
CONDS = {
    "a": (
        "A",
        lambda e: e["type"] == "A" and e["value"] > 10,
        "event.type == 'A' && event.value > 10",
    ),
    "b": (
        "B",
        lambda e: e["type"] == "B" and e["value"] > 20,
        "event.type == 'B' && event.value > 20",
    ),
    "c": (
        "C",
        lambda e: e["type"] == "C" and e["value"] < 90,
        "event.type == 'C' && event.value < 90",
    ),
}


def make_events(n: int, keys: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    types = ["A", "B", "C", "D"]
    out = []
    for i in range(n):
        out.append(
            {
                "id": f"e{i}",
                "key": f"k{rnd.randrange(keys)}",
                "ts": 1_700_000_000_000 + i * 50,
                "type": rnd.choice(types),
                "value": rnd.randrange(100),
                "source": "bench",
                "region": rnd.choice(["eu", "us", "ap"]),
                "amount": rnd.random() * 1000,
                "currency": "EUR",
                "channel": "web",
                "session": f"s{rnd.randrange(1_000_000)}",
                "tags": ["x", "y"],
            }
        )
    return out


def pattern_with(make: Any) -> Any:
    p = Pattern.begin("a")
    for i, name in enumerate(("a", "b", "c")):
        if i:
            p = p.followed_by(name)
        guard, fn, src = CONDS[name]
        p = make(p, guard, fn, src)
    return p.within(WITHIN_MS)


def run_engine(etp: EventTimeProcessor, events: list[dict[str, Any]]) -> tuple[float, int]:
    states: dict[str, Any] = {}
    matches = 0
    gc.collect()
    t0 = time.perf_counter()
    for e in events:
        key = e["key"]
        st = states.get(key)
        if st is None:
            st = states[key] = etp.new_state()
        out = etp.on_event(st, e, e["ts"], e["ts"])
        matches += len(out.matches)
    return time.perf_counter() - t0, matches


def run_runner(runner: RuleRunner, events: list[dict[str, Any]]) -> tuple[float, int]:
    states: dict[tuple[str, str], Any] = {}
    matches = 0
    gc.collect()
    t0 = time.perf_counter()
    for e in events:
        for rule, key, ts, eid in runner.route("events", e):
            st = states.get((rule, key))
            if st is None:
                st = states[(rule, key)] = runner.new_state(rule)
            wm = runner.observe(rule, ts)
            matches += len(runner.process(rule, st, key, e, ts, None, wm, eid))
    return time.perf_counter() - t0, matches


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--keys", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; each variant's best is kept")
    args = ap.parse_args()
    events = make_events(args.events, args.keys, args.seed)

    callables = EventTimeProcessor(
        compile_pattern(pattern_with(lambda p, g, fn, src: p.where(fn, guard=("type", g))))
    )
    programs = {name: cel.compile(src) for name, (_g, _fn, src) in CONDS.items()}

    def naive(name: str) -> Any:
        prog = programs[name]
        return lambda e: prog.execute({"event": e}) is True

    naive_etp = EventTimeProcessor(
        compile_pattern(pattern_with(lambda p, g, fn, src: p.where(naive(_name_of(src)))))
    )
    (rule,) = load_rules_text(RULE, "pattern-a.yaml")

    def fresh_rule_etp() -> EventTimeProcessor:
        """The rule's compiled NFA with its CEL conditions, driven without the runner."""
        return RuleRunner([rule])._get("pattern-a").etp

    variants = (
        ("callables", lambda: run_engine(callables, events)),
        ("rule", lambda: run_runner(RuleRunner([rule]), events)),
        ("rule-engine", lambda: run_engine(fresh_rule_etp(), events)),
        ("naive-cel", lambda: run_engine(naive_etp, events)),
    )
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeat):  # interleaved rounds: load changes hit every variant alike
        for name, fn in variants:
            secs, matches = fn()
            best = results.get(name)
            if best is None or secs < best["seconds"]:
                results[name] = {
                    "seconds": round(secs, 3),
                    "events_per_s": round(len(events) / secs),
                    "matches": matches,
                }
    base = results["callables"]["events_per_s"]
    print(
        f"pattern (a): {args.events} events, {args.keys} keys, best of {args.repeat}, "
        f"Python {platform.python_version()}"
    )
    print(f"{'variant':<12} {'events/s':>10} {'vs callables':>13} {'matches':>8}")
    for name, r in results.items():
        print(
            f"{name:<12} {r['events_per_s']:>10,} {r['events_per_s'] / base:>12.0%} {r['matches']:>8}"
        )
    same = len({r["matches"] for r in results.values()}) == 1
    print(
        json.dumps(
            {
                "bench": "rules",
                "events": args.events,
                "keys": args.keys,
                "results": results,
                "same_matches": same,
            }
        )
    )
    return 0 if same else 1


def _name_of(src: str) -> str:
    return next(n for n, (_g, _f, s) in CONDS.items() if s == src)


if __name__ == "__main__":
    sys.exit(main())
