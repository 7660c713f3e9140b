"""Engine benchmark: reference patterns in-process on pre-decoded events.

    python -m bench.engine            # full run (a few minutes), prints a markdown report
    python -m bench.engine --quick    # small sizes, for a smoke check
    python -m bench.engine --profile  # cProfile of scenario (a), 10k keys
    python -m bench.engine --compare DIR [--rounds 5]  # this tree against DIR/cep, interleaved

Scenarios (every pattern has a window; the driver keeps a deadline heap and advances only the
keys that are due, as the runtime does):

(a) ``A followed_by B followed_by C within 10 min``
(b) ``A followed_by B.one_or_more() followed_by C within 10 min``, skip_past_last_event
(c) ``A followed_by B not_followed_by C within 10 min`` (absence: matches come from timers)

Streams: keys uniform; event types A, B, C and 7 others, uniform; 10 ms between events. The
multi-pattern runs use the same stream; an A event carries ``region`` 0..49 as
``start = "A<region>"`` and pattern *i* starts on ``start == "A<i>"`` (``guard=("start",
"A<i>")``), so 1, 10 and 50 patterns see the same events and together start as many runs as
the one pattern of the headline. The floor is the same driver loop calling the 3 conditions of one pattern per
event and doing nothing else. ``drive`` is the caller's loop over the per-key API (``process``,
``next_deadline``, a deadline heap); ``drive_keyed`` is the same loop through
``cep.KeyedRunner``, as a runtime would use it (the headline and ``--compare`` report both;
for (a), a plain chain, the runner takes the step of ``cep.chain``).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import gc
import heapq
import io
import os
import platform
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from cep import KeyedRunner, Pattern, PatternSet, SkipStrategy, compile_pattern

WINDOW = 10 * 60_000
TYPES = ["A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]
REGIONS = 50


def is_type(t: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e["type"] == t


def start_cond(region: int | None) -> Callable[[dict[str, Any]], bool]:
    if region is None:
        return is_type("A")
    tag = f"A{region}"
    return lambda e: e.get("start") == tag


def build(kind: str, region: int | None = None):
    guard = ("type", "A") if region is None else ("start", f"A{region}")
    skip = SkipStrategy.skip_past_last_event() if kind == "b" else SkipStrategy.no_skip()
    p = Pattern.begin("a", skip=skip).where(start_cond(region), guard=guard)
    if kind == "a":
        p = p.followed_by("b").where(is_type("B")).followed_by("c").where(is_type("C"))
    elif kind == "b":
        p = p.followed_by("b").where(is_type("B")).one_or_more()
        p = p.followed_by("c").where(is_type("C"))
    else:
        p = p.followed_by("b").where(is_type("B")).not_followed_by("c").where(is_type("C"))
    return compile_pattern(p.within(WINDOW))


def make_stream(n: int, keys: int, seed: int, step: int = 10) -> list[tuple[int, dict, int]]:
    rnd = random.Random(seed)
    out = []
    ts = 1_700_000_000_000
    for i in range(n):
        ts += step
        ev = {"id": i, "type": rnd.choice(TYPES), "region": rnd.randrange(REGIONS), "amount": 12.5}
        if ev["type"] == "A":
            ev["start"] = f"A{ev['region']}"
        out.append((rnd.randrange(keys), ev, ts))
    return out


def drive(engine: Any, stream: list, tick_every: int = 1000) -> dict[str, Any]:
    """Feed the stream; every ``tick_every`` events advance the keys whose deadline passed."""
    states: dict[int, Any] = {}
    get = states.get
    new = engine.new_state
    process = engine.process
    advance = engine.advance_time
    next_deadline = engine.next_deadline
    heap: list[tuple[float, int]] = []
    scheduled: dict[int, float] = {}
    matches = timeouts = 0
    t0 = time.process_time()
    for i, (key, ev, ts) in enumerate(stream):
        st = get(key)
        if st is None:
            st = states[key] = new()
        matches += len(process(st, ev, ts))
        d = next_deadline(st)
        if d is not None and scheduled.get(key) != d:
            scheduled[key] = d
            heapq.heappush(heap, (d, key))
        if i % tick_every == 0:
            while heap and heap[0][0] <= ts:
                d, k = heapq.heappop(heap)
                if scheduled.get(k) != d:
                    continue
                del scheduled[k]
                s = states[k]
                tos, ms = advance(s, ts)
                timeouts += len(tos)
                matches += len(ms)
                d2 = next_deadline(s)
                if d2 is not None:
                    scheduled[k] = d2
                    heapq.heappush(heap, (d2, k))
    cpu = time.process_time() - t0
    return {"cpu": cpu, "matches": matches, "timeouts": timeouts, "states": states}


def drive_keyed(
    engine: Any, stream: list, tick_every: int = 1000, runner: Any = KeyedRunner
) -> dict[str, Any]:
    """``drive`` through :class:`cep.KeyedRunner` (which keeps the states and the deadline
    heap, as a runtime would use it): the same events, ticks, matches, timeouts and final
    states."""
    keyed = runner(engine)
    process = keyed.process
    advance = keyed.advance_time
    matches = timeouts = 0
    t0 = time.process_time()
    for i, (key, ev, ts) in enumerate(stream):
        matches += len(process(key, ev, ts))
        if i % tick_every == 0:
            tos, ms = advance(ts)
            timeouts += len(tos)
            matches += len(ms)
    cpu = time.process_time() - t0
    return {"cpu": cpu, "matches": matches, "timeouts": timeouts, "states": keyed.states}


def floor(stream: list) -> float:
    conds = [is_type("A"), is_type("B"), is_type("C")]
    states: dict[int, Any] = {}
    get = states.get
    t0 = time.process_time()
    for key, ev, _ts in stream:
        st = get(key)
        if st is None:
            st = states[key] = []
        for c in conds:
            c(ev)
    return time.process_time() - t0


def state_size(engine: Any, states: dict[int, Any]) -> tuple[float, int, int]:
    """(bytes per partial match over keys holding one, partial matches, idle-key bytes)."""
    total = pm = 0
    idle = 0
    to_bytes = engine.to_bytes if isinstance(engine, PatternSet) else (lambda s: s.to_bytes())
    for st in states.values():
        n = (
            sum(s.partial_match_count for s in st.states.values())
            if isinstance(engine, PatternSet)
            else st.partial_match_count
        )
        if n:
            total += len(to_bytes(st))
            pm += n
        elif not idle:
            idle = len(to_bytes(st))
    return (total / pm if pm else 0.0), pm, idle


def median_rate(fn: Callable[[], float], n_events: int, reps: int) -> tuple[float, list[float]]:
    rates = [n_events / fn() for _ in range(reps)]
    return statistics.median(rates), rates


def compare(other: str, rounds: int, n: int) -> None:
    """(a) as one ``NFA``, a 1-pattern and a 50-pattern ``PatternSet`` (10k keys, tuned GC),
    driven by this tree's ``cep`` and by ``<other>/cep`` in interleaved rounds (the order
    reversed every other round); prints CPU-time medians, outputs and the 50/1 ratios.
    Each tree is driven by ``drive`` (the per-key API); a tree that has ``KeyedRunner`` is
    also driven through it (``drive_keyed``, rows marked "runner")."""
    import cep
    from bench.compare import load_copy

    old = load_copy(other, "cep_compared")
    s1 = make_stream(n, 10_000, seed=1)
    s2 = make_stream(n, 10_000, seed=2)
    runs: list[tuple[str, str, Any, list, Callable[..., dict[str, Any]]]] = []
    for tree, mod in (("this tree", cep), (other, old)):

        def mk(region: int | None, mod: Any = mod) -> Any:
            return _build_with(mod, "a", region)

        drivers: list[tuple[str, Callable[..., dict[str, Any]]]] = [("", drive)]
        if hasattr(mod, "KeyedRunner"):
            runner = mod.KeyedRunner

            def keyed(engine: Any, stream: list, runner: Any = runner) -> dict[str, Any]:
                return drive_keyed(engine, stream, runner=runner)

            drivers.append((", runner", keyed))
        for suffix, drv in drivers:
            runs.append((tree, f"(a) one NFA{suffix}", mk(None), s1, drv))
            runs.append((tree, f"(a) 1 pattern{suffix}", mod.PatternSet({"p0": mk(0)}), s2, drv))
            fifty = mod.PatternSet({f"p{i}": mk(i) for i in range(50)})
            runs.append((tree, f"(a) 50 patterns{suffix}", fifty, s2, drv))
    gc.freeze()
    old_threshold = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    print(f"- load average at start (1, 5, 15 min): {os.getloadavg()}")
    cpus: dict[tuple[str, str], list[float]] = {(t, name): [] for t, name, *_rest in runs}
    outs: dict[tuple[str, str], tuple[int, int]] = {}
    for r in range(rounds):
        for tree, name, eng, stream, drv in runs if r % 2 == 0 else runs[::-1]:
            run = drv(eng, stream)
            cpus[(tree, name)].append(run["cpu"])
            outs[(tree, name)] = (run["matches"], run["timeouts"])
            del run
            gc.collect()
    gc.set_threshold(*old_threshold)
    gc.unfreeze()
    print(f"- load average at end: {os.getloadavg()}\n")
    print("| tree | run | events/s (median) | runs | matches, timeouts |")
    print("|---|---|---:|---|---|")
    for (tree, name), cs in cpus.items():
        rates = ", ".join(f"{n / c:,.0f}" for c in cs)
        med = n / statistics.median(cs)
        print(f"| {tree} | {name} | {med:,.0f} | {rates} | {outs[(tree, name)]} |")
    for tree, suffix in ((t, sx) for t in ("this tree", other) for sx in ("", ", runner")):
        if (tree, f"(a) 1 pattern{suffix}") not in cpus:
            continue
        one = cpus[(tree, f"(a) 1 pattern{suffix}")]
        fifty = cpus[(tree, f"(a) 50 patterns{suffix}")]
        per_round = statistics.median(f / o for f, o in zip(fifty, one, strict=True))
        print(
            f"\n{tree}{suffix}: 50 / 1 pattern = "
            f"{statistics.median(fifty) / statistics.median(one):.2f}x"
            f" (median of per-round ratios {per_round:.2f}x)"
        )


def _build_with(mod: Any, kind: str, region: int | None) -> Any:
    """``build`` with another copy of the engine's ``Pattern``/``compile_pattern``."""
    g = globals()
    saved = {k: g[k] for k in ("Pattern", "SkipStrategy", "compile_pattern")}
    g.update(
        Pattern=mod.Pattern, SkipStrategy=mod.SkipStrategy, compile_pattern=mod.compile_pattern
    )
    try:
        return build(kind, region)
    finally:
        g.update(saved)


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs (nproc), {model}, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke check)")
    ap.add_argument("--profile", action="store_true", help="profile scenario (a), 10k keys")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--compare", metavar="DIR", help="also drive DIR/cep, interleaved (A/B)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of --compare")
    args = ap.parse_args(argv)

    quick = args.quick
    reps = args.reps or 3
    n_10k = 60_000 if quick else 600_000
    n_1m = 100_000 if quick else 2_000_000
    keys_big = 100_000 if quick else 1_000_000
    wall0 = time.perf_counter()

    if args.compare:
        print(f"# engine A/B: this tree against {args.compare}\n")
        print(
            f"- command: `python -m bench.engine --compare {args.compare} "
            f"--rounds {args.rounds}{' --quick' if quick else ''}`"
        )
        print(f"- machine: {machine()}")
        print(f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
        compare(args.compare, args.rounds, 60_000 if quick else 600_000)
        return

    if args.profile:
        stream = make_stream(200_000, 10_000, seed=1)
        nfa = build("a")
        prof = cProfile.Profile()
        prof.enable()
        drive(nfa, stream)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
        return

    print(f"# engine benchmark ({'quick' if quick else 'full'})\n")
    print(f"- command: `python -m bench.engine{' --quick' if quick else ''}`")
    print(f"- machine: {machine()}")
    print(f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    print(f"- repetitions: {reps}, median quoted; CPU time of this process (time.process_time)")
    print(f"- load average at start (1, 5, 15 min): {os.getloadavg()}\n")

    # -- headline: (a) on 10k keys, default GC and tuned GC -----------------------------------
    stream = make_stream(n_10k, 10_000, seed=1)
    nfa_a = build("a")
    base, _ = median_rate(lambda: floor(stream), len(stream), reps)
    rate_default, rs = median_rate(lambda: drive(nfa_a, stream)["cpu"], len(stream), reps)
    gc.freeze()  # the pre-built stream is not scanned by the collector any more
    rate_frozen, rs1 = median_rate(lambda: drive(nfa_a, stream)["cpu"], len(stream), reps)
    old = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    rate_tuned, rs2 = median_rate(lambda: drive(nfa_a, stream)["cpu"], len(stream), reps)
    rate_keyed, rs3 = median_rate(lambda: drive_keyed(nfa_a, stream)["cpu"], len(stream), reps)
    base_tuned, _ = median_rate(lambda: floor(stream), len(stream), reps)
    print("## (a) 3-stage followed_by within, 10k keys, one pattern\n")
    print("| GC | events/s (median) | runs | floor events/s | engine / floor time |")
    print("|---|---:|---|---:|---:|")
    print(
        f"| default `{old}` | {rate_default:,.0f} | {', '.join(f'{r:,.0f}' for r in rs)} "
        f"| {base:,.0f} | {base / rate_default:.1f}x |"
    )
    print(
        f"| `gc.freeze()` after building the stream | {rate_frozen:,.0f} "
        f"| {', '.join(f'{r:,.0f}' for r in rs1)} | | {base / rate_frozen:.1f}x |"
    )
    print(
        f"| tuned `gc.freeze(); gc.set_threshold(50000, 50, 100)` | {rate_tuned:,.0f} "
        f"| {', '.join(f'{r:,.0f}' for r in rs2)} | {base_tuned:,.0f} | {base_tuned / rate_tuned:.1f}x |"
    )
    print(
        f"| tuned, through `KeyedRunner` | {rate_keyed:,.0f} "
        f"| {', '.join(f'{r:,.0f}' for r in rs3)} | {base_tuned:,.0f} "
        f"| {base_tuned / rate_keyed:.1f}x |"
    )
    print()

    # -- all scenarios, keys x patterns (tuned GC) ----------------------------------------------
    print("## All scenarios (tuned GC), events/s (median) and cost relative to one pattern\n")
    print(
        "| scenario | keys | events | patterns | events/s | x one pattern | matches | timeouts "
        "| bytes / partial match | partial matches |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for keys, n, step in ((10_000, n_10k, 10), (keys_big, n_1m, 1)):
        mstream = make_stream(n, keys, seed=2, step=step)
        r_reps = reps if keys <= 10_000 else max(1, reps - 2 if not quick else reps)
        for kind in ("a", "b", "c"):
            # 1, 10 and 50 patterns run in interleaved rounds, so the ratios compare runs made
            # under the same machine load
            counts = (1, 10, 50)
            engines = {
                npat: PatternSet({f"p{i}": build(kind, region=i) for i in range(npat)})
                for npat in counts
            }
            cpus: dict[int, list[float]] = {npat: [] for npat in counts}
            last: dict[int, tuple[int, int, float, int]] = {}
            for rep in range(r_reps):
                for npat in counts if rep % 2 == 0 else counts[::-1]:
                    run = drive(engines[npat], mstream)
                    cpus[npat].append(run["cpu"])
                    if rep == r_reps - 1:
                        bpm, pm, _idle = state_size(engines[npat], run["states"])
                        last[npat] = (run["matches"], run["timeouts"], bpm, pm)
                    del run
                    gc.collect()
            one = len(mstream) / statistics.median(cpus[1])
            for npat in counts:
                rate = len(mstream) / statistics.median(cpus[npat])
                m, t, bpm, pm = last[npat]
                print(
                    f"| ({kind}) | {keys:,} | {len(mstream):,} | {npat} | {rate:,.0f} "
                    f"| {one / rate:.2f} | {m:,} | {t:,} | {bpm:,.0f} | {pm:,} |"
                )
        del mstream
        gc.collect()
    gc.set_threshold(*old)
    gc.unfreeze()
    print(f"\ntotal wall time: {time.perf_counter() - wall0:,.0f} s")
    print(f"load average at end (1, 5, 15 min): {os.getloadavg()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
