"""The engine's shortcuts change nothing: the same NFA with every shortcut switched off (all
events through Flink's general edge walk, general buffer operations, no quick check, fresh
states built by ``_process``, every match through the skip strategy's ``prune``) gives the
same outputs, deadlines and state bytes after every step, and a ``PatternSet`` gives what its
patterns give when each is run alone on every event. The event-time buffer's shortcut (no
``advance_time`` call before a state's deadline, ``next_deadline`` read from the state) is
held to the same standard against the plain calls.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from cep import (
    NFA,
    EventTimeProcessor,
    Pattern,
    PatternSet,
    SkipStrategy,
    WithinType,
    compile_pattern,
)
from cep.state import NFAState


class _GeneralState(NFAState):
    """A state whose buffer never takes the one-walk path for unshared runs."""

    __slots__ = ()

    def pop_private(self, key: Any, version: Any) -> None:
        return None


def _general(nfa: NFA) -> NFA:
    n = len(nfa.graph)
    nfa.fast = [None] * n
    nfa.fast_take = [None] * n
    nfa._quick = [(None, None)] * n
    nfa._first_take = None
    nfa._prune_may_raise = True  # every match through ``prune`` (no one-walk emission)
    return nfa


def _is(t: str):
    return lambda e: e["t"] == t


def _iterative(e: dict[str, Any], ctx: Any) -> bool:
    return len(ctx.events_for("b")) < 2 or e["v"] > 3


SKIPS = {
    "no_skip": SkipStrategy.no_skip,
    "skip_to_next": SkipStrategy.skip_to_next,
    "skip_past_last_event": SkipStrategy.skip_past_last_event,
    "skip_to_first_b": lambda: SkipStrategy.skip_to_first("b"),
    "skip_to_last_b": lambda: SkipStrategy.skip_to_last("b"),
    "skip_to_first_b_throw": lambda: SkipStrategy.skip_to_first("b").throw_exception_on_miss(),
}


def _shapes(skip: str) -> list[Pattern]:
    def begin() -> Pattern:
        return Pattern.begin("a", skip=SKIPS[skip]()).where(_is("a"), guard=("t", "a"))

    w = 40
    return [
        begin().followed_by("b").where(_is("b")).followed_by("c").where(_is("c")).within(w),
        begin().followed_by_any("b").where(_is("b")).followed_by("c").where(_is("c")).within(w),
        begin()
        .followed_by("b")
        .where(_is("b"))
        .one_or_more()
        .followed_by("c")
        .where(_is("c"))
        .within(w),
        begin()
        .followed_by("b")
        .where(_is("b"))
        .one_or_more()
        .allow_combinations()
        .followed_by("c")
        .where(_is("c"))
        .within(w),
        begin().next("b").where(_is("b")).followed_by("c").where(_is("c")).within(w),
        begin().followed_by("b").where(_is("b")).not_followed_by("c").where(_is("c")).within(w),
        begin()
        .followed_by("b")
        .where(_iterative)
        .times(1, 3)
        .followed_by("c")
        .where(_is("c"))
        .within(w),
        begin()
        .followed_by("b")
        .where(_is("b"))
        .within(8, WithinType.PREVIOUS_AND_CURRENT)
        .followed_by("c")
        .where(_is("c"))
        .within(w),
        begin().followed_by("b").where(_is("b")),
    ]


def _steps(seed: int, n: int) -> list[tuple[str, int, dict[str, Any] | None]]:
    rnd = random.Random(seed)
    ts, out = 0, []
    for i in range(n):
        ts += rnd.choice([0, 1, 1, 2, 3, 9])
        if rnd.random() < 0.1:
            out.append(("advance", ts, None))
        else:
            out.append(("event", ts, {"t": rnd.choice("aabbbccdx"), "v": rnd.randrange(6), "i": i}))
    return out


@pytest.mark.parametrize("skip", sorted(SKIPS))
def test_shortcuts_change_no_output_and_no_state_byte(skip: str) -> None:
    for k, pattern in enumerate(_shapes(skip)):
        cap = 4 if k % 2 else 10_000
        fast = compile_pattern(pattern, max_partial_matches=cap)
        slow = _general(compile_pattern(pattern, max_partial_matches=cap))
        fs, ss = fast.new_state(), _GeneralState(slow, [slow._start_run])
        for step, (kind, ts, ev) in enumerate(_steps(k, 300)):
            if kind == "advance":
                got, want = fast.advance_time(fs, ts), slow.advance_time(ss, ts)
            else:
                got, want = fast.process(fs, ev, ts), slow.process(ss, ev, ts)
            where = f"pattern {k}, step {step}"
            assert repr(got) == repr(want), where
            assert fast.next_deadline(fs) == slow.next_deadline(ss), where
            assert fs == ss, where
            if step % 10 == 0:
                assert fs.to_bytes() == ss.to_bytes(), where


def test_pattern_set_gives_what_each_pattern_gives_alone() -> None:
    patterns = {f"{skip}{k}": p for skip in SKIPS for k, p in enumerate(_shapes(skip))}
    alone = {name: _general(compile_pattern(p)) for name, p in patterns.items()}
    together = PatternSet({name: compile_pattern(p) for name, p in patterns.items()})
    states = {name: _GeneralState(nfa, [nfa._start_run]) for name, nfa in alone.items()}
    set_state = together.new_state()
    seen = 0
    for kind, ts, ev in _steps(99, 600):
        want_m: list[tuple[str, Any]] = []
        want_t: list[tuple[str, Any]] = []
        for name, nfa in alone.items():
            if kind == "advance":
                tos, ms = nfa.advance_time(states[name], ts)
                want_t += [(name, t) for t in tos]
            else:
                ms = nfa.process(states[name], ev, ts)
            want_m += [(name, m) for m in ms]
        if kind == "advance":
            got_t, got_m = together.advance_time(set_state, ts)
            assert sorted(map(repr, got_t)) == sorted(map(repr, want_t))
        else:
            got_m = together.process(set_state, ev, ts)
        assert sorted(map(repr, got_m)) == sorted(map(repr, want_m))
        seen += len(want_m) + len(want_t)
    assert seen > 100  # the stream exercises matches and timeouts, not only idle keys


def _plain(proc: EventTimeProcessor) -> EventTimeProcessor:
    """The processor asking its NFA every time (as for an engine that is not an ``NFA``)."""
    proc._knows_deadline = False
    return proc


def _event_time_steps(seed: int, n: int) -> list[tuple[str, int, int | None, Any]]:
    """Events out of order within 12 time units, some late; caller watermarks sometimes."""
    rnd = random.Random(seed)
    now, out = 0, []
    for i in range(n):
        now += rnd.choice([0, 1, 2, 3])
        r = rnd.random()
        if r < 0.1:
            out.append(("watermark", now - rnd.randrange(15), None, None))
            continue
        ts = max(0, now - rnd.randrange(12 if r < 0.95 else 40))
        wm = now - 10 if r < 0.4 else None
        ev = {"t": rnd.choice("aabbbccdx"), "v": rnd.randrange(6), "i": i}
        out.append(("event", ts, wm, ev))
    return out


@pytest.mark.parametrize("processing_time", [False, True])
@pytest.mark.parametrize("skip", ["no_skip", "skip_past_last_event", "skip_to_first_b"])
def test_event_time_shortcuts_change_no_output_and_no_state_byte(
    skip: str, processing_time: bool
) -> None:
    emitted = 0
    for k, pattern in enumerate(_shapes(skip)):
        nfa = compile_pattern(pattern, max_partial_matches=6 if k % 2 else 40)
        fast = EventTimeProcessor(nfa, 10, processing_time=processing_time)
        slow = _plain(EventTimeProcessor(nfa, 10, processing_time=processing_time))
        assert fast._knows_deadline and not slow._knows_deadline
        fs, ss = fast.new_state(), slow.new_state()
        for step, (kind, ts, wm, ev) in enumerate(_event_time_steps(k, 250)):
            if kind == "watermark":
                got, want = fast.on_watermark(fs, ts), slow.on_watermark(ss, ts)
            else:
                got, want = fast.on_event(fs, ev, ts, wm), slow.on_event(ss, ev, ts, wm)
            where = f"pattern {k}, step {step}"
            assert repr(got) == repr(want), where
            assert fast.next_deadline(fs) == slow.next_deadline(ss), where
            assert fs == ss, where
            if step % 10 == 0:
                assert fs.to_bytes() == ss.to_bytes(), where
            emitted += len(got.matches) + len(got.timeouts) + len(got.late)
    assert emitted > 100  # the streams produce matches, timeouts and late events


def _guarded_shapes(skip: str) -> list[Pattern]:
    """Shapes whose every simple condition carries its guard (as compiled rules do)."""

    def on(t: str) -> tuple[Any, tuple[str, str]]:
        return _is(t), ("t", t)

    def begin() -> Pattern:
        return Pattern.begin("a", skip=SKIPS[skip]()).where(*on("a"))

    w = 40
    return [
        begin().followed_by("b").where(*on("b")).followed_by("c").where(*on("c")).within(w),
        begin().followed_by_any("b").where(*on("b")).followed_by("c").where(*on("c")).within(w),
        begin().followed_by("b").where(*on("b")).one_or_more().followed_by("c").where(*on("c")),
        begin().next("b").where(*on("b")).followed_by("c").where(*on("c")).within(w),
        begin().followed_by("b").where(*on("b")).not_followed_by("c").where(*on("c")).within(w),
        begin().followed_by("b").where(*on("b")).or_(_is("d"), guard=("t", "d")).within(w),
    ]


def _pattern_set_steps(ps: PatternSet, seed: int, n: int, general: bool) -> list[str]:
    """Run ``ps`` over a stream; with ``general``, every event through ``_process_general``."""
    state = ps.new_state()
    seen: list[str] = []
    for kind, ts, ev in _steps(seed, n):
        if kind == "advance":
            tos, ms = ps.advance_time(state, ts)
            seen.append(repr(tos))
        elif general:
            ms = ps._process_general(state, ev, ts)
        else:
            ms = ps.process(state, ev, ts)
        seen.append(repr(ms))
        seen.append(repr(ps.next_deadline(state)))
        seen.append(ps.to_bytes(state).decode())
        # the summary is what it would be if built afresh from the states
        kept = (state.watch, state.due, state.next)
        ps._summarise(state)
        assert (state.watch, state.due, state.next) == kept
    return seen


@pytest.mark.parametrize("guarded", [False, True])
def test_pattern_set_watch_path_equals_the_general_path(guarded: bool) -> None:
    shapes = _guarded_shapes if guarded else _shapes
    patterns = {f"{skip}{k}": p for skip in SKIPS for k, p in enumerate(shapes(skip))}
    fast = PatternSet({name: compile_pattern(p) for name, p in patterns.items()})
    plain = PatternSet({name: compile_pattern(p) for name, p in patterns.items()})
    assert fast._one_field is not None  # the dict fast path is the one under test
    watched = fast._process_watched
    used: list[int] = []

    def counted(state: Any, watch: Any, event: Any, ts: int) -> Any:
        used.append(1)
        return watched(state, watch, event, ts)

    fast._process_watched = counted  # type: ignore[method-assign]
    got = _pattern_set_steps(fast, 7, 500, general=False)
    want = _pattern_set_steps(plain, 7, 500, general=True)
    assert got == want
    assert len(used) > 20  # the summary path did run (45 times with this seed)
    assert sum(1 for x in got if "Match(" in x or "Timeout(" in x) > 50
