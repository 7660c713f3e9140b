"""The plain-chain step of ``KeyedRunner`` (``cep.chain``) against the general engine.

For patterns that qualify (one-event stages joined by ``followed_by``, simple conditions,
``no_skip``, at most a whole-pattern window) the runner takes events and expiry through
``cep.chain``; everything must come out as from the engine's own ``process`` /
``advance_time`` / ``next_deadline`` loop: matches, timeouts, deadlines, state bytes, over
random streams (timestamps that repeat and go back, many runs per key, the run cap), and state
written by one path must resume in the other.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from typing import Any

import pytest

from cep import KeyedRunner, Pattern, SkipStrategy, WithinType, compile_pattern
from cep.chain import chain_tables
from cep.nfa import NFA


def _is(t: str) -> Any:
    return lambda e: e["t"] == t


A, B, C = _is("a"), _is("b"), _is("c")


def _in(ts: str) -> Any:
    return lambda e: e["t"] in ts


def _chain(*conds: Any, window: int | None = 40, cap: int = 10_000, skip: Any = None) -> NFA:
    p = Pattern.begin("s0", skip=skip).where(conds[0])
    for i, c in enumerate(conds[1:], 1):
        p = p.followed_by(f"s{i}").where(c)
    if window is not None:
        p = p.within(window)
    return compile_pattern(p, max_partial_matches=cap)


# name -> pattern; every one of them is a plain chain
CHAINS: dict[str, Any] = {
    "a b c, within": lambda: _chain(A, B, C),
    "a b c, no window": lambda: _chain(A, B, C, window=None),
    "a b, within": lambda: _chain(A, B, window=25),
    "a alone, within": lambda: _chain(A),
    "a b a (one condition twice)": lambda: _chain(A, B, A),
    "overlapping conditions": lambda: _chain(_in("ab"), _in("bc"), _in("ca"), window=30),
    "a b c, cap 3": lambda: _chain(A, B, C, cap=3),
    "a b c, cap 1": lambda: _chain(A, B, C, cap=1),
    "4 stages": lambda: _chain(A, B, _in("bc"), C, window=60),
}


def _stream(seed: int, n: int, keys: int) -> list[tuple[str, int, int, dict[str, Any] | None]]:
    """(kind, key, ts, event): timestamps mostly rising, sometimes equal or going back; ticks."""
    rnd = random.Random(seed)
    ts, out = 0, []
    for i in range(n):
        ts += rnd.choice([0, 1, 1, 2, 3, 5, 9])
        if rnd.random() < 0.03:
            ts = max(0, ts - rnd.randrange(1, 15))  # processing time is the caller's
        if rnd.random() < 0.08:
            out.append(("tick", -1, ts, None))
        else:
            ev = {"t": rnd.choice("aabbbccdx"), "i": i}
            out.append(("event", rnd.randrange(keys), ts, ev))
    return out


def _general(nfa: NFA, stream: list, states: dict[int, Any] | None = None) -> tuple[list, dict]:
    """The engine's own loop: ``process``, a heap of ``next_deadline``, ``advance_time``."""
    states = {} if states is None else states
    heap: list[tuple[float, int]] = []
    scheduled: dict[int, float] = {}
    for key, st in states.items():
        d = nfa.next_deadline(st)
        if d is not None:
            scheduled[key] = d
            heapq.heappush(heap, (d, key))
    seen: list[Any] = []
    for kind, key, ts, ev in stream:
        if kind == "event":
            st = states.get(key)
            if st is None:
                st = states[key] = nfa.new_state()
            seen.append((key, repr(nfa.process(st, ev, ts))))
            d = nfa.next_deadline(st)
            if d is not None and scheduled.get(key) != d:
                scheduled[key] = d
                heapq.heappush(heap, (d, key))
        else:
            tos: list[Any] = []
            ms: list[Any] = []
            while heap and heap[0][0] <= ts:
                d, k = heapq.heappop(heap)
                if scheduled.get(k) != d:
                    continue
                del scheduled[k]
                t, m = nfa.advance_time(states[k], ts)
                tos += [(k, x) for x in t]
                ms += [(k, x) for x in m]
                d2 = nfa.next_deadline(states[k])
                if d2 is not None:
                    scheduled[k] = d2
                    heapq.heappush(heap, (d2, k))
            seen.append(repr((tos, ms)))
        due = [nfa.next_deadline(st) for st in states.values()]
        seen.append(("deadline", min((d for d in due if d is not None), default=None)))
    return seen, states


def _fast(nfa: NFA, stream: list, runner: KeyedRunner | None = None) -> tuple[list, KeyedRunner]:
    runner = KeyedRunner(nfa) if runner is None else runner
    seen: list[Any] = []
    for kind, key, ts, ev in stream:
        if kind == "event":
            seen.append((key, repr(list(runner.process(key, ev, ts)))))
        else:
            seen.append(repr(runner.advance_time(ts)))
        seen.append(("deadline", runner.next_deadline()))
    return seen, runner


def _blobs(states: Any) -> dict[Any, bytes]:
    return {k: st.to_bytes() for k, st in states.items()}


@pytest.mark.parametrize("name", list(CHAINS))
def test_qualifies(name: str) -> None:
    nfa = CHAINS[name]()
    assert chain_tables(nfa) is not None
    assert KeyedRunner(nfa)._chain is not None


@pytest.mark.parametrize(
    "build",
    [
        lambda: _chain(A, B, C, skip=SkipStrategy.skip_past_last_event()),
        lambda: _chain(A, B, C, skip=SkipStrategy.skip_to_next()),
        lambda: compile_pattern(Pattern.begin("a").where(A).next("b").where(B).within(9)),
        lambda: compile_pattern(Pattern.begin("a").where(A).followed_by_any("b").where(B)),
        lambda: compile_pattern(
            Pattern.begin("a").where(A).followed_by("b").where(B).one_or_more()
        ),
        lambda: compile_pattern(
            Pattern.begin("a")
            .where(A)
            .followed_by("b")
            .where(B)
            .not_followed_by("c")
            .where(C)
            .within(9)
        ),
        lambda: compile_pattern(
            Pattern.begin("a")
            .where(A)
            .followed_by("b")
            .where(B)
            .optional()
            .followed_by("c")
            .where(C)
        ),
        lambda: compile_pattern(
            Pattern.begin("a").where(A).followed_by("b").where(lambda e, ctx: True)
        ),
        lambda: compile_pattern(
            Pattern.begin("a")
            .where(A)
            .followed_by("b")
            .where(B)
            .within(5, WithinType.PREVIOUS_AND_CURRENT)
        ),
    ],
    ids=[
        "skip past",
        "skip to next",
        "next",
        "followed_by_any",
        "loop",
        "trailing not",
        "optional",
        "iterative",
        "stage window",
    ],
)
def test_other_shapes_take_the_general_path(build: Any) -> None:
    nfa = build()
    assert chain_tables(nfa) is None
    assert KeyedRunner(nfa)._chain is None


@pytest.mark.parametrize("name", list(CHAINS))
@pytest.mark.parametrize("seed", range(6))
def test_same_as_the_general_path(name: str, seed: int) -> None:
    stream = _stream(seed, 700, keys=4)
    want, states = _general(CHAINS[name](), stream)
    got, runner = _fast(CHAINS[name](), stream)
    assert got == want
    assert _blobs(runner.states) == _blobs(states)


@pytest.mark.parametrize("name", ["a b c, within", "a b a (one condition twice)", "4 stages"])
@pytest.mark.parametrize("seed", range(4))
def test_state_moves_between_paths(name: str, seed: int) -> None:
    """State written by the chain step resumes in the general path and the other way round,
    with the same outputs and bytes as a run through one path only."""
    nfa = CHAINS[name]()
    stream = _stream(100 + seed, 900, keys=3)
    first, second = stream[:450], stream[450:]
    want, states = _general(nfa, stream)

    # chain first, then general on states loaded from its bytes
    got1, runner = _fast(nfa, first)
    loaded = {k: nfa.state_from_bytes(b) for k, b in _blobs(runner.states).items()}
    got2, states2 = _general(nfa, second, loaded)
    assert _blobs(states2) == _blobs(states)

    # general first, then the chain step on states loaded from its bytes
    _, half = _general(nfa, first)
    resumed = {k: nfa.state_from_bytes(b) for k, b in _blobs(half).items()}
    got3, runner3 = _fast(nfa, second, KeyedRunner(nfa, resumed))
    assert _blobs(runner3.states) == _blobs(states)
    assert got1 + got2 == want
    assert got3 == want[2 * len(first) :]


def test_conditions_called_at_most_once_per_event() -> None:
    """The chain step calls each condition at most once per event (the general path may call
    one twice: its quick check skips only repeats of the previous run's condition); where
    it hands an event to the general path, no more often than that path alone."""
    calls: Counter[str] = Counter()

    def counting(t: str) -> Any:
        def cond(e: dict[str, Any]) -> bool:
            calls[t] += 1
            return e["t"] == t

        return cond

    nfa = _chain(counting("a"), counting("b"), counting("c"), window=50)
    runner = KeyedRunner(nfa)
    assert runner._chain is not None
    states: dict[int, Any] = {}
    for kind, key, ts, ev in _stream(7, 1500, keys=2):
        if kind == "event":
            calls.clear()
            runner.process(key, ev, ts)
            fast = dict(calls)
            calls.clear()
            nfa.process(states.setdefault(key, nfa.new_state()), ev, ts)
            for t, n in fast.items():
                assert n <= max(1, calls[t])
        else:
            runner.advance_time(ts)
            for st in states.values():
                nfa.advance_time(st, ts)
    assert _blobs(runner.states) == _blobs(states)


def test_general_calls_on_a_runner_state_keep_it_consistent() -> None:
    """Changing a runner's state through the NFA itself (then ``reschedule``) is fine: the
    engine resets the state's watch, so the runner does not use a stale one."""
    nfa = CHAINS["a b c, within"]()
    runner = KeyedRunner(nfa)
    ref, states = _general(nfa, [])
    runner.process(1, {"t": "a"}, 1)
    nfa.process(runner.states[1], {"t": "b"}, 2)
    runner.reschedule(1)
    assert [m.events for m in runner.process(1, {"t": "c"}, 3)] == [
        {"s0": [{"t": "a"}], "s1": [{"t": "b"}], "s2": [{"t": "c"}]}
    ]
    assert ref == [] and states == {}


def test_two_runners_over_one_mapping() -> None:
    """Each chain runner keeps its own canonical watches; a state last changed by another
    runner is read from its runs."""
    nfa = CHAINS["a b c, within"]()
    stream = [x for x in _stream(11, 600, keys=3) if x[0] == "event"]
    want, states = _general(nfa, stream)
    shared: dict[Any, Any] = {}
    one, two = KeyedRunner(nfa, shared), KeyedRunner(nfa, shared)
    got = []
    for i, (_kind, key, ts, ev) in enumerate(stream):
        runner = one if i % 2 else two
        got.append((key, repr(list(runner.process(key, ev, ts)))))
    assert got == [x for x in want if x[0] != "deadline"]
    assert _blobs(shared) == _blobs(states)
