"""A worker's CPU per detection, offline and stage by stage: engine → Detection → CloudEvent
record → history, no Kafka.

    .venv/bin/python -m bench.detections                        # this tree, µs per detection
    .venv/bin/python -m bench.detections --tree /tmp/base       # another copy of the repository

The detections of :data:`bench.common.LATENCY_RULE` (``--keys`` keys, each completing A then B,
``sent`` a float of epoch millis as ``paced_stream`` sends it) and of the flight rules
(``--passengers`` passengers: a delay of an hour or more, a rebooking search, a connection at
risk; gold tier in the context of every other one, so ``rebooking-offer``,
``lounge-voucher`` and, 45 minutes later, ``service-desk-alert`` fire) are made by a
:class:`cep.rules.RuleRunner` of the tree, then each stage runs again on its own over the same
detections, so its cost per detection can be read apart:

``engine``      ``process``/``advance`` of every event: the engine, Detection objects and
                their ``data`` (all of the runner's part);
``data``        ``RuleEnv.data`` alone, on the inputs the engine handed it;
``detection``   building the Detection objects alone (same fields);
``id``          ``Detection.id``; ``rfc3339``: the CloudEvent ``time`` of ``end``;
``cloudevent``  ``Detection.to_cloudevent()`` (id and time included);
``orjson``      ``orjson.dumps`` of the CloudEvents;
``records``     ``agents.actions.to_records`` per detection (CloudEvent + orjson + record);
``history``     ``agents.writer.StateWriter.add`` per detection, then ``merge_history`` per
                key as a flush does;
``feed``        (consumer side, not the detect path) ``decode_cloudevent`` + ``DetectionRing.add``
                per record, as every worker's cluster feed does with what the cluster emitted;
``send``        (the library's, the same for every tree) ``AIOKafkaProducer.send`` of each
                record, without a broker: the topic's metadata is stubbed (4 partitions)
                and the accumulator's batches are dropped every 64 records instead of being
                sent, so this counts the append only (not Faust's wrapper, not the sender).
 The digest is a SHA-256
over every output: each detection (rule, key, kind, stages, times, data, errors), each record's
topic, key and bytes, and each key's merged history. Two trees that behave the same print the
same digest. ``--callgrind`` (under ``valgrind --tool=callgrind --instr-atstart=no``) dumps one
profile per stage, so each dump counts that stage alone::

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \\
        .venv/bin/python -m bench.detections --callgrind
    .venv/bin/python -m bench.detections --totals /tmp/cg.<pid>   # Ir per stage, per detection
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import importlib
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.common import LATENCY_RULE
from bench.pipeline import ROOT, Tree, callgrind_marks, rule_texts

FLIGHTS = ROOT / "scenarios" / "flights" / "rules"
T0_MS = 1_790_000_000_000
MINUTE = 60_000
STAGES = (
    "engine",
    "data",
    "detection",
    "id",
    "rfc3339",
    "cloudevent",
    "orjson",
    "records",
    "history",
    "feed",
    "send",
)


def _events(keys: int, passengers: int) -> list[tuple[str, dict[str, Any], int]]:
    """(topic, event, ts) in time order: the latency rule's A/B pairs and the flight traffic."""
    out: list[tuple[str, dict[str, Any], int]] = []
    for i in range(keys):
        ts = T0_MS + i * 10
        user = f"u{i}"
        for j, kind in enumerate("AB"):
            sent = ts + j + 0.123 * (i % 7)
            out.append(
                (
                    "bench",
                    {"id": f"e{i}-{j}", "user": user, "type": kind, "ts": ts + j, "sent": sent},
                    ts + j,
                )
            )
    for i in range(passengers):
        ts = T0_MS + i * 10
        pid = f"P{i:05d}"
        flight = f"KA{100 + i % 900}"
        steps = [
            {"type": "FlightDelayed", "flight": flight, "delay_min": 60 + i % 120},
            {"type": "RebookingSearch", "destination": ["LHR", "CDG", "JFK", "NRT"][i % 4]},
            {"type": "ConnectionAtRisk", "connecting_flight": f"KA{2000 + i}"},
        ]
        for j, step in enumerate(steps):
            t = ts + j * MINUTE
            out.append(
                (
                    "flight-events",
                    {"event_id": f"f{i}-{j}", "passenger_id": pid, "ts": t, **step},
                    t,
                )
            )
    out.sort(key=lambda row: row[2])
    return out


def _contexts(passengers: int) -> dict[str, dict[str, Any]]:
    return {f"P{i:05d}": {"tier": "gold" if i % 2 == 0 else "silver"} for i in range(passengers)}


class Bench:
    """One tree's runner, the traffic, and each stage as a function of the detections."""

    def __init__(self, tree: Tree, keys: int, passengers: int) -> None:
        self.tree = tree
        with tree.active():
            sys.path.insert(0, str(tree.root))
            try:
                self.writer_mod = importlib.import_module("agents.writer")
                self.feed_mod = importlib.import_module("agents.feed")
            finally:
                sys.path.remove(str(tree.root))
            tree.modules.update(
                {n: m for n, m in sys.modules.items() if n.split(".", 1)[0] in ("agents", "cep")}
            )
        self.detection_mod = tree["cep.rules.detection"]
        self.actions = tree["agents.actions"]
        book = tree["agents.rulebook"].RuleBook()
        texts = {
            "bench-latency": LATENCY_RULE.format(source="bench", out="alerts"),
            **rule_texts(),
            "lounge-voucher": (FLIGHTS / "lounge-voucher.yaml").read_text(),
        }
        for name, text in texts.items():
            status = book.apply(name, text)
            if not status.ok:
                raise SystemExit(f"rule {name} rejected: {status.errors}")
        self.runner = book.runner
        self.traffic = _events(keys, passengers)
        self.contexts = _contexts(passengers)

    # -- the engine -----------------------------------------------------------------------
    def detect(self) -> list[Any]:
        """Every detection of the traffic (the ``engine`` stage)."""
        runner = self.runner
        runner._max_ts.clear()  # each run starts from the same time (the states are fresh)
        states: dict[tuple[str, str], Any] = {}
        contexts = self.contexts
        found: list[Any] = []
        last_ts = T0_MS
        for topic, event, ts in self.traffic:
            for route in runner.route(topic, event):
                sk = (route.rule, route.key)
                state = states.get(sk)
                if state is None:
                    state = states[sk] = runner.new_state(route.rule)
                wm = runner.observe(route.rule, route.ts)
                found += runner.process(
                    route.rule,
                    state,
                    route.key,
                    event,
                    route.ts,
                    contexts.get(route.key),
                    wm,
                    route.eid,
                )
            last_ts = ts
        end = last_ts + 24 * 60 * MINUTE
        for (rule, key), state in states.items():
            found += runner.advance(rule, state, key, end, contexts.get(key))
        return found

    def data_inputs(self) -> list[tuple[Any, tuple[Any, ...]]]:
        """``(env, args)`` of every ``RuleEnv.data`` call the engine makes (recorded in an
        unmeasured run)."""
        calls: list[tuple[Any, tuple[Any, ...]]] = []
        envs = [c.env for c in self.runner._rules.values()]
        for env in envs:
            original = env.data

            def record(*args: Any, _env: Any = env, _orig: Any = original) -> Any:
                calls.append((_env, args))
                return _orig(*args)

            env.data = record
        try:
            self.detect()
        finally:
            for env in envs:
                del env.data
        return calls

    # -- the stages -----------------------------------------------------------------------
    def stages(self, dets: list[Any], data_calls: list[Any]) -> dict[str, Callable[[], Any]]:
        detection_mod, actions = self.detection_mod, self.actions
        Detection, rfc3339 = detection_mod.Detection, detection_mod.rfc3339
        fields = [
            dict(
                rule=d.rule,
                version=d.version,
                key=d.key,
                kind=d.kind,
                stages=d.stages,
                start=d.start,
                end=d.end,
                data=d.data,
                action=d.action,
                topic=d.topic,
                errors=d.errors,
            )
            for d in dets
        ]
        events = [d.to_cloudevent() for d in dets]
        records = actions.to_records(dets)
        StateWriter = self.writer_mod.StateWriter
        feed = self.feed_mod

        def data() -> list[Any]:
            return [env.data(*args) for env, args in data_calls]

        def detection() -> list[Any]:
            return [Detection(**f) for f in fields]

        def ids() -> list[str]:
            return [d.id for d in dets]

        def times() -> list[str]:
            return [rfc3339(d.end) for d in dets]

        def cloudevents() -> list[Any]:
            return [d.to_cloudevent() for d in dets]

        def dumps() -> list[bytes]:
            return [orjson.dumps(e) for e in events]

        def to_records() -> list[Any]:
            return [actions.to_records([d]) for d in dets]

        def history() -> dict[bytes, bytes]:
            writer = StateWriter(None, None, None, None, history_size=20)  # type: ignore[arg-type]
            for r in records:
                writer.add(0, (), ((r.key, r.cloudevent),), None)
            merged: dict[bytes, bytes] = {}
            for key, new in writer._pending[0].history.items():
                merged[key] = actions.merge_history(merged.get(key), new, writer.history_size)
            return merged

        def ring() -> int:
            ring = feed.DetectionRing(size=feed.RING_SIZE)
            kept = 0
            for i, r in enumerate(records):
                decoded = feed.decode_cloudevent(r.value)
                if decoded is not None:
                    kept += ring.add(T0_MS + i, decoded[1], live=True, rule=decoded[0])
            return kept

        def send() -> int:
            return asyncio.run(_send_all(records))

        return {
            "engine": self.detect,
            "data": data,
            "detection": detection,
            "id": ids,
            "rfc3339": times,
            "cloudevent": cloudevents,
            "orjson": dumps,
            "records": to_records,
            "history": history,
            "feed": ring,
            "send": send,
        }


async def _send_all(records: list[Any]) -> int:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", linger_ms=5, acks=1)
    parts = {0, 1, 2, 3}

    async def ready(topic: str) -> set[int]:
        return parts

    producer.client._wait_on_metadata = ready
    producer._metadata.partitions_for_topic = lambda topic: parts
    producer._metadata.available_partitions_for_topic = lambda topic: parts
    batches = producer._message_accumulator._batches
    sent = 0
    for i, r in enumerate(records, 1):
        await producer.send(r.topic, r.value, key=r.key)
        sent += 1
        if i % 64 == 0:
            batches.clear()
    batches.clear()
    producer._closed = True  # never started: nothing to close
    return sent


def digest(dets: list[Any], records: list[Any], history: dict[bytes, bytes]) -> str:
    h = hashlib.sha256()
    for d in dets:
        h.update(
            orjson.dumps(
                [d.rule, d.version, d.key, d.kind, d.stages, d.start, d.end, d.data, d.errors]
            )
        )
        h.update(d.id.encode())
    for r in records:
        h.update(b"R%s:%s=%s;" % (r.topic.encode(), r.key, r.value))
    for key in sorted(history):
        h.update(b"H%s=%s;" % (key, history[key]))
    return h.hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="the copy to run (default: this)")
    ap.add_argument("--keys", type=int, default=3000, help="keys of the latency rule")
    ap.add_argument("--passengers", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per stage (best kept)")
    ap.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="under valgrind --tool=callgrind --instr-atstart=no: one dump per stage",
    )
    ap.add_argument("--totals", type=Path, help="print Ir per stage of a --callgrind run's dumps")
    ap.add_argument("--per", type=int, help="with --totals: the run's detections (Ir each)")
    args = ap.parse_args(argv)
    if args.totals is not None:
        return totals(args.totals, args.per)

    tree = Tree(args.tree)
    bench = Bench(tree, args.keys, args.passengers)
    with tree.active():
        data_calls = bench.data_inputs()
        dets = bench.detect()
        records = bench.actions.to_records(dets)
        stages = bench.stages(dets, data_calls)
        hist = stages["history"]()
    kinds: dict[str, int] = {}
    for d in dets:
        kinds[f"{d.rule}/{d.kind}"] = kinds.get(f"{d.rule}/{d.kind}", 0) + 1
    n = len(dets)
    print(
        f"tree {tree.root}: {len(bench.traffic)} events, {n} detections "
        f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}), "
        f"{len(records)} records, digest {digest(dets, records, hist)}",
        flush=True,
    )
    marks = callgrind_marks() if args.callgrind else None
    if marks is not None:
        print(f"callgrind: {n} detections per dump", flush=True)
    wanted = [s for s in args.stages.split(",") if s]
    for name in wanted:
        fn = stages[name]
        gc.collect()
        with tree.active():
            if marks is not None:
                marks.bench_start()
                fn()
                marks.bench_stop(name.encode())
                continue
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.process_time()
                fn()
                best = min(best, time.process_time() - t0)
        print(f"{name:<11} {best * 1e6 / n:8.2f} µs/detection", flush=True)
    return 0


def totals(path: Path, per: int | None = None) -> int:
    """Ir per stage (and per detection) of the dumps ``path.N`` of a ``--callgrind`` run."""
    files = sorted(Path(path.parent).glob(path.name + ".*"), key=lambda p: int(p.suffix[1:] or 0))
    rows = []
    for f in files:
        text = f.read_text(errors="replace")
        trigger = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        total = re.search(r"^totals: (\d+)", text, re.M)
        if trigger and total:
            rows.append((trigger.group(1), int(total.group(1))))
    if not rows:
        raise SystemExit(f"no stage dumps at {path}.N (run with --callgrind under valgrind)")
    for label, ir in rows:
        each = f"  {ir / per:>10,.0f} Ir/detection" if per else ""
        print(f"{label:<11} {ir:>14,} Ir{each}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
