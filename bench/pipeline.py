"""A worker's own CPU per event, offline: ingest → keyed batches → detect → flush, no Kafka.

    .venv/bin/python -m bench.pipeline                                  # this tree
    .venv/bin/python -m bench.pipeline --rounds 5 --compare /tmp/base   # interleaved A/B

What a ``kairos worker`` does with a poll, minus the Kafka clients and Faust: the flight
traffic of :mod:`bench.e2e` (``flight_events``, keyed by passenger, ``--sources`` source
partitions, polls of ``--per-poll`` records from each) goes through :class:`agents.ingest.Ingest`
(decode, validate, route), each keyed batch is encoded and decoded (:mod:`agents.wire`),
applied by :class:`agents.detect.Detector`, its detections turned into CloudEvents records
(:func:`agents.actions.to_records`), and the state flushed: after every keyed message
(per-message writes: exactly_once, or ``KAIROS_COALESCE_STATE_WRITES=false``) or every
``--coalesce`` messages (coalesced writes, at_least_once), with the detection history merged per key as the
:class:`agents.writer.StateWriter` does. Every 50 polls each keyed partition gets a tick (the
ingest's 1 s tick: a poll is 20 ms of a virtual clock, so a run's outputs are deterministic).
One record in 5 000 is replaced by a broken one (alternately not JSON and without the key), so
the dead-letter path runs too (:class:`Load` holds these numbers).

Each run prints events per CPU second of the loop (``time.process_time``) and a SHA-256 over
everything the worker would write: detections (rule, key, kind, stages, times, data, and the
CloudEvents record bytes), dead letters (value and headers), state-table and history writes
in order. Two trees that behave the same print the same digest. The loop only keeps what it
writes; the hash is taken after it, so neither the CPU time nor ``--callgrind`` counts it.

``--compare DIR`` loads ``agents/``, ``tables/`` and ``cep/`` of another copy of the repository
into the same process (each tree's modules are swapped into ``sys.modules`` for its runs, so
imports made inside functions resolve to the same tree) and runs both in alternating rounds;
medians and the ratio are printed, and a digest mismatch is an error (``--state-may-differ``:
only a mismatch of the output digest is; it hashes the detections, records, dead letters and
history writes sorted, without the state writes: a change may release an event-time match in
an earlier or later message of the same run). For instruction counts
run one tree at a time under Callgrind with ``--callgrind`` (client requests around each
run's loop, so its dump counts the loop alone)::

    valgrind --tool=callgrind --instr-atstart=no .venv/bin/python -m bench.pipeline \\
        --callgrind --tree /tmp/base --events 20000
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import hashlib
import importlib
import inspect
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from bench.e2e import FLIGHT_RULES, flight_events

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agents", "tables", "cep")
#: Imported up front: the pipeline's modules, and those the engine imports inside functions.
MODULES = (
    "agents.ingest",
    "agents.wire",
    "agents.detect",
    "agents.rulebook",
    "agents.actions",
    "cep.serde",
    "cep.match",
)
SOURCE_TOPIC = "flight-events"
T0_MS = 1_790_000_000_000


def _ours(name: str) -> bool:
    return name.split(".", 1)[0] in PACKAGES


class Tree:
    """The pipeline's modules of one copy of the repository, importable side by side."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        current = {n: m for n, m in sys.modules.items() if _ours(n)}
        for name in current:
            del sys.modules[name]
        sys.path.insert(0, str(self.root))
        try:
            for name in MODULES:
                importlib.import_module(name)
            self.modules = {n: m for n, m in sys.modules.items() if _ours(n)}
        finally:
            sys.path.remove(str(self.root))
            for name in [n for n in sys.modules if _ours(n)]:
                del sys.modules[name]
            sys.modules.update(current)
        for name, module in self.modules.items():
            origin = getattr(module, "__file__", None)
            if origin and not Path(origin).resolve().is_relative_to(self.root):
                raise SystemExit(f"{name} was imported from {origin}, not from {self.root}")

    def __getitem__(self, name: str) -> ModuleType:
        return self.modules[name]

    @contextmanager
    def active(self) -> Iterator[None]:
        """This tree's modules in ``sys.modules`` (for imports made at run time)."""
        saved = {n: m for n, m in sys.modules.items() if _ours(n)}
        for name in saved:
            del sys.modules[name]
        sys.modules.update(self.modules)
        try:
            yield
        finally:
            for name in self.modules:
                sys.modules.pop(name, None)
            sys.modules.update(saved)


@dataclass(frozen=True)
class Load:
    """The traffic of a run: ``bench.e2e``'s flight events, polls of ``per_poll`` records from
    each of ``sources`` source partitions, ``poll_ms`` of virtual clock apart."""

    events: int = 40_000
    passengers: int = 2_000
    sources: int = 4
    partitions: int = 4
    per_poll: int = 100
    poll_ms: int = 20
    tick_every: int = 50
    bad_every: int = 5_000
    coalesce: int | None = None  # None: flush after every keyed message


Record = tuple[str, int, int, bytes | None, bytes | None, list[tuple[str, bytes]]]


def make_polls(load: Load) -> list[list[Record]]:
    """The source records, keyed by passenger as ``bench.e2e`` preloads them, in polls."""
    from aiokafka.partitioner import murmur2

    queues: list[list[bytes]] = [[] for _ in range(load.sources)]
    for i, raw in enumerate(flight_events(load.events, load.passengers), 1):
        pid = orjson.loads(raw)["passenger_id"]
        if load.bad_every and i % load.bad_every == 0:
            raw = b"{not json" if (i // load.bad_every) % 2 else b'{"type": "CheckIn"}'
        queues[(murmur2(pid.encode()) & 0x7FFFFFFF) % load.sources].append(raw)
    polls: list[list[Record]] = []
    start = 0
    while any(start < len(q) for q in queues):
        poll: list[Record] = []
        for p, queue in enumerate(queues):
            for offset in range(start, min(start + load.per_poll, len(queue))):
                poll.append((SOURCE_TOPIC, p, offset, None, queue[offset], []))
        polls.append(poll)
        start += load.per_poll
    return polls


@dataclass
class Result:
    cpu_s: float
    events: int
    detections: int
    dead: int
    writes: int
    digest: str
    # what leaves the worker (detections, records, dead letters, history), in any order
    output_digest: str

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s else float("nan")


def rule_texts() -> dict[str, str]:
    rules = ROOT / "scenarios" / "flights" / "rules"
    return {f.removesuffix(".yaml"): (rules / f).read_text() for f in FLIGHT_RULES}


def run(
    tree: Tree, polls: list[list[Record]], load: Load, history_size: int = 20, marks: Any = None
) -> Result:
    """One pass of ``polls`` through a fresh worker of ``tree`` (the collector tuned as
    ``kairos worker`` tunes it, ``_tune_gc`` in ``app/commands/worker.py``)."""
    gc.collect()
    gc.freeze()
    threshold = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    try:
        with tree.active():
            return _run(tree, polls, load, history_size, marks)
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _detection_bytes(det: Any) -> bytes:
    fields = ("rule", "version", "key", "kind", "stages", "start", "end", "data")
    return orjson.dumps([getattr(det, f) for f in fields])


def _run(
    tree: Tree, polls: list[list[Record]], load: Load, history_size: int, marks: Any
) -> Result:
    ingest_mod, wire, detect, actions = (
        tree["agents.ingest"],
        tree["agents.wire"],
        tree["agents.detect"],
        tree["agents.actions"],
    )
    book = tree["agents.rulebook"].RuleBook()
    for name, text in rule_texts().items():
        status = book.apply(name, text)
        if not status.ok:
            raise SystemExit(f"rule {name} rejected: {status.errors}")
    table: dict[bytes, bytes] = {}
    history: dict[bytes, bytes] = {}
    ingest = ingest_mod.Ingest(book, load.partitions)
    detector = detect.Detector(book, table, load.partitions)
    # trees before 2026-11-26 have no idle declarations in their ticks
    declares = "caught" in inspect.signature(wire.encode_tick).parameters
    # what the run writes, hashed after the loop (the hash is no part of a worker's CPU)
    trail: list[tuple[bytes, tuple[Any, ...]]] = []
    note = trail.append
    pending: dict[int, dict[bytes, list[Any]]] = {}
    counts = {"events": 0, "detections": 0, "dead": 0, "writes": 0}

    def flush(partitions: list[int]) -> None:
        for p in partitions:
            writes = detector.flush(p)
            for key, value in writes.items():
                note((b"S%d:%s=%s;", (p, key, b"-" if value is None else value)))
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
            for key, events in pending.pop(p, {}).items():
                merged = actions.merge_history(history.get(key), events, history_size)
                history[key] = merged
                note((b"H%s=%s;", (key, merged)))
            counts["writes"] += len(writes)

    unflushed = 0
    now = T0_MS
    if marks is not None:
        marks.bench_start()
    t0 = time.process_time()
    for i, records in enumerate(polls, 1):
        now += load.poll_ms
        routed = ingest.route_poll(records, now_ms=now)
        # the events the ingest accepted (since 2026-11-26 not all of them reach detect)
        counts["events"] += routed.events
        keyed = [(p, builder.encode()) for p, builder in routed.batches.items()]
        for dead in routed.dead:
            note((b"D%s;", (dead.value,)))
            for name, header in dead.dlq_headers():
                note((b"%s=%s;", (name.encode(), header)))
        counts["dead"] += len(routed.dead)
        if i % load.tick_every == 0:
            # one ingest owns every source partition and has read each to the end
            caught = (sorted(ingest.src_last),) if declares else ()
            tick = wire.encode_tick(now, ingest.max_ts, ingest.src_last, *caught)
            keyed += [(p, tick) for p in range(load.partitions)]
        for p, value in keyed:
            outcome = detector.handle(p, wire.decode(value))
            for det in outcome.detections:
                note((b"%s", (_detection_bytes(det),)))
            counts["detections"] += len(outcome.detections)
            for item, source, error in outcome.failed:
                note((b"%s", (orjson.dumps([item, source, error]),)))
            history_of = pending.setdefault(p, {})
            for record in actions.to_records(outcome.detections):
                note((b"R%s:%s=%s;", (record.topic.encode(), record.key, record.value)))
                history_of.setdefault(record.key, []).append(record.cloudevent)
            if load.coalesce is None:
                flush([p])
            else:
                unflushed += 1
                if unflushed >= load.coalesce:
                    unflushed = 0
                    flush(sorted(set(pending) | set(detector.cached_partitions())))
    flush(sorted(set(pending) | set(detector.cached_partitions())))
    cpu = time.process_time() - t0
    if marks is not None:
        marks.bench_stop(b"per-message" if load.coalesce is None else b"coalesced")
    digest, output = hashlib.sha256(), hashlib.sha256()
    out_lines = []
    for fmt, args in trail:
        line = fmt % args
        digest.update(line)
        if not fmt.startswith(b"S"):
            out_lines.append(line)
    for line in sorted(out_lines):  # the same output in any order across messages
        output.update(line)
    return Result(
        cpu,
        counts["events"],
        counts["detections"],
        counts["dead"],
        counts["writes"],
        digest.hexdigest()[:16],
        output.hexdigest()[:16],
    )


_CALLGRIND_SHIM = """
#include <valgrind/callgrind.h>
void bench_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void bench_stop(const char *label) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(label); }
"""


def callgrind_marks() -> Any:
    """``bench_start()`` / ``bench_stop(label)``: Callgrind client requests (no-ops outside
    valgrind), so a dump holds exactly one run's loop. Needs gcc and valgrind's headers."""
    tmp = Path(tempfile.mkdtemp(prefix="kairos-cg-"))
    (tmp / "marks.c").write_text(_CALLGRIND_SHIM)
    try:
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-O1", "-o", str(tmp / "marks.so"), str(tmp / "marks.c")],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"--callgrind needs gcc and valgrind's headers (valgrind-dev): {exc}"
        ) from None
    return ctypes.CDLL(str(tmp / "marks.so"))


def _line(label: str, r: Result) -> str:
    return (
        f"{label:<28} {r.events:>7} events {r.cpu_s:7.3f} CPU-s {r.per_cpu_s:>8.0f} ev/CPU-s "
        f"({1e6 / r.per_cpu_s:6.1f} µs/ev)  detections {r.detections} dead {r.dead} "
        f"writes {r.writes} digest {r.digest} output {r.output_digest}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="the copy to run (default: this)")
    ap.add_argument("--compare", type=Path, help="another copy, run in alternating rounds")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--writes", choices=["per-message", "coalesced", "both"], default="both")
    ap.add_argument("--coalesce", type=int, default=64, help="keyed messages per flush")
    ap.add_argument("--events", type=int, default=Load.events)
    ap.add_argument("--passengers", type=int, default=Load.passengers)
    ap.add_argument("--per-poll", type=int, default=Load.per_poll, help="per source partition")
    ap.add_argument(
        "--callgrind",
        action="store_true",
        help="under valgrind --tool=callgrind --instr-atstart=no: one dump per run's loop",
    )
    ap.add_argument(
        "--state-may-differ",
        action="store_true",
        help="accept trees whose state bytes and order of output differ as long as their "
        "output digests agree (the detections, records, dead letters and history writes, "
        "sorted)",
    )
    args = ap.parse_args(argv)

    base = Load(events=args.events, passengers=args.passengers, per_poll=args.per_poll)
    modes = {
        "per-message": base,
        "coalesced": Load(**{**base.__dict__, "coalesce": args.coalesce}),
    }
    if args.writes != "both":
        modes = {args.writes: modes[args.writes]}
    trees = {"tree": Tree(args.tree)}
    if args.compare is not None:
        trees["compare"] = Tree(args.compare)
    polls = make_polls(base)
    print(
        f"{args.events} flight events, {base.passengers} passengers, {base.sources} source "
        f"partitions x {base.per_poll} records a poll, {base.partitions} keyed partitions; "
        + ", ".join(f"{label}: {tree.root}" for label, tree in trees.items())
    )
    marks = callgrind_marks() if args.callgrind else None
    results: dict[tuple[str, str], list[Result]] = {}
    for r in range(args.rounds):
        for mode, load in modes.items():
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for label in order:
                res = run(trees[label], polls, load, marks=marks)
                results.setdefault((mode, label), []).append(res)
                print(_line(f"round {r + 1} {mode} {label}", res), flush=True)
    failed = False
    for mode in modes:
        digests = {res.digest for label in trees for res in results[mode, label]}
        outputs = {res.output_digest for label in trees for res in results[mode, label]}
        if len(outputs) != 1:
            print(f"OUTPUT DIGEST MISMATCH ({mode}): {sorted(outputs)}", file=sys.stderr)
            failed = True
        elif len(digests) != 1 and not args.state_may_differ:
            print(
                f"DIGEST MISMATCH ({mode}): {sorted(digests)} (the same output; state bytes "
                "differ: --state-may-differ accepts that)",
                file=sys.stderr,
            )
            failed = True
        med = {
            label: statistics.median(res.per_cpu_s for res in results[mode, label])
            for label in trees
        }
        text = ", ".join(f"{label} {v:.0f} ev/CPU-s" for label, v in med.items())
        if "compare" in med:
            ratios = [
                a.per_cpu_s / b.per_cpu_s
                for a, b in zip(results[mode, "tree"], results[mode, "compare"], strict=True)
            ]
            text += f"; tree/compare per round: median {statistics.median(ratios):.3f} "
            text += f"(min {min(ratios):.3f}, max {max(ratios):.3f})"
        print(f"median {mode}: {text}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
