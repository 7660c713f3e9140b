"""``KeyedRunner`` gives exactly what the caller's own loop gives: per key ``process``, a heap of
``next_deadline`` values and, on a tick, ``advance_time`` of the keys that are due; the same
matches, timeouts, final state bytes and deadlines, for an ``NFA`` and for a ``PatternSet``.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

import pytest
from test_engine_fastpaths import SKIPS, _shapes

from cep import KeyedRunner, PatternSet, compile_pattern
from cep.patternset import PatternSetState


def _stream(seed: int, n: int, keys: int) -> list[tuple[str, int, int, dict[str, Any] | None]]:
    """(kind, key, ts, event): events on a few keys, sometimes at one timestamp; ticks."""
    rnd = random.Random(seed)
    ts, out = 0, []
    for i in range(n):
        ts += rnd.choice([0, 1, 1, 2, 3, 9])
        if rnd.random() < 0.08:
            out.append(("tick", -1, ts, None))
        else:
            ev = {"t": rnd.choice("aabbbccdx"), "v": rnd.randrange(6), "i": i}
            out.append(("event", rnd.randrange(keys), ts, ev))
    return out


def _by_hand(engine: Any, stream: list) -> tuple[list[str], dict[int, Any]]:
    """The loop a caller writes without the runner."""
    states: dict[int, Any] = {}
    heap: list[tuple[float, int]] = []
    scheduled: dict[int, float] = {}
    seen: list[str] = []
    for kind, key, ts, ev in stream:
        if kind == "event":
            st = states.get(key)
            if st is None:
                st = states[key] = engine.new_state()
            seen.append(repr((key, engine.process(st, ev, ts))))
            d = engine.next_deadline(st)
            if d is not None and scheduled.get(key) != d:
                scheduled[key] = d
                heapq.heappush(heap, (d, key))
            continue
        tos: list[Any] = []
        ms: list[Any] = []
        while heap and heap[0][0] <= ts:
            d, k = heapq.heappop(heap)
            if scheduled.get(k) != d:
                continue
            del scheduled[k]
            t, m = engine.advance_time(states[k], ts)
            tos += [(k, x) for x in t]
            ms += [(k, x) for x in m]
            d2 = engine.next_deadline(states[k])
            if d2 is not None:
                scheduled[k] = d2
                heapq.heappush(heap, (d2, k))
        seen.append(repr((tos, ms)))
    return seen, states


def _with_runner(engine: Any, stream: list) -> tuple[list[str], KeyedRunner]:
    runner = KeyedRunner(engine)
    seen: list[str] = []
    for kind, key, ts, ev in stream:
        if kind == "event":
            seen.append(repr((key, list(runner.process(key, ev, ts)))))
        else:
            seen.append(repr(runner.advance_time(ts)))
    return seen, runner


def _bytes(engine: Any, st: Any) -> bytes:
    return engine.to_bytes(st) if isinstance(st, PatternSetState) else st.to_bytes()


def _same(engine: Any, stream: list) -> int:
    want, states = _by_hand(engine, stream)
    got, runner = _with_runner(engine, stream)
    assert got == want
    assert sorted(runner.states) == sorted(states)
    for k, st in states.items():
        assert _bytes(engine, runner.states[k]) == _bytes(engine, st), k
        assert engine.next_deadline(runner.states[k]) == engine.next_deadline(st), k
    due = [d for d in map(engine.next_deadline, states.values()) if d is not None]
    assert runner.next_deadline() == (min(due) if due else None)
    return sum(1 for x in got if "Match(" in x or "Timeout(" in x)


@pytest.mark.parametrize("skip", sorted(SKIPS))
def test_runner_over_an_nfa_gives_the_callers_loop_output(skip: str) -> None:
    emitted = 0
    for k, pattern in enumerate(_shapes(skip)):
        nfa = compile_pattern(pattern, max_partial_matches=4 if k % 2 else 10_000)
        emitted += _same(nfa, _stream(k, 800, keys=5))
    assert emitted > 100  # matches and timeouts, not only idle keys


def test_runner_over_a_pattern_set_gives_the_callers_loop_output() -> None:
    patterns = {f"{skip}{k}": p for skip in SKIPS for k, p in enumerate(_shapes(skip))}
    ps = PatternSet({name: compile_pattern(p) for name, p in patterns.items()})
    assert _same(ps, _stream(3, 600, keys=4)) > 100


def test_runner_schedules_the_states_it_is_given() -> None:
    nfa = compile_pattern(_shapes("no_skip")[0])  # a, b, c within 40
    first = KeyedRunner(nfa)
    first.process("k", {"t": "a"}, 10)
    first.process("k", {"t": "b"}, 12)
    first.process("j", {"t": "x"}, 12)
    blobs = {k: st.to_bytes() for k, st in first.states.items()}
    # resumed from bytes into a mapping the caller owns
    states = {k: nfa.state_from_bytes(b) for k, b in blobs.items()}
    again = KeyedRunner(nfa, states)
    assert again.states is states
    assert again.next_deadline() == 50
    assert again.advance_time(49) == ([], [])
    timeouts, matches = again.advance_time(50)
    assert [(k, t.events, t.timestamp) for k, t in timeouts] == [
        ("k", {"a": [{"t": "a"}], "b": [{"t": "b"}]}, 50)
    ]
    assert matches == [] and again.next_deadline() is None
    # a state changed outside the runner is scheduled again by ``reschedule``
    st = again.states["j"]
    nfa.process(st, {"t": "a"}, 60)
    assert again.next_deadline() is None
    again.reschedule("j")
    assert again.next_deadline() == 100
    del again.states["j"]
    again.reschedule("j")
    assert again.next_deadline() is None


def test_runner_refuses_what_is_not_an_engine() -> None:
    with pytest.raises(TypeError, match=r"compile the pattern with cep\.compile_pattern"):
        KeyedRunner(object())  # type: ignore[arg-type]
