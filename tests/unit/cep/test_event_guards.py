"""``Tables.event_guards``: an event matching none of them changes no state of the pattern.

Exact values for representative shapes, then the claim itself over random guarded patterns
and streams full of irrelevant events: feeding every event must give what feeding only the
relevant ones gives, both when time is moved at each left-out event (``advance_time`` or a
watermark there: the state is unchanged) and when it is not (the runtime skips such events
altogether, so time must not move differently either) — through ``NFA``, through
``EventTimeProcessor`` with out-of-order events and watermarks, and through ``KeyedRunner``
(whose plain-chain step, ``cep.chain``, answers most such events itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, note, reject, settings
from hypothesis import strategies as st

from cep import (
    EventTimeProcessor,
    KeyedRunner,
    MalformedPatternError,
    Pattern,
    SkipStrategy,
    WithinType,
    compile_pattern,
)
from cep.nfa import NFA
from cep.serde import state_to_doc


def on(t: str, field: str = "t") -> tuple[Any, tuple[str, str]]:
    """A simple condition ``event[field] == t`` with its guard."""
    return (lambda e: e.get(field) == t), (field, t)


def on_iter(t: str, first: str = "s0") -> tuple[Any, tuple[str, str]]:
    """An iterative condition: type ``t`` and another ``v`` than the first stage's events."""

    def cond(e: dict[str, Any], ctx: Any) -> bool:
        return e.get("t") == t and all(p["v"] != e["v"] for p in ctx.events_for(first))

    return cond, ("t", t)


def vals(nfa: NFA) -> set[str] | None:
    g = nfa.event_guards
    return None if g is None else {v for _f, v in g}


def begin(skip: Any = None) -> Pattern:
    return Pattern.begin("a", skip=skip).where(*on("a"))


PAST = SkipStrategy.skip_past_last_event
W = 10


# -- exact values ------------------------------------------------------------------------
GUARDED: dict[str, tuple[Any, set[str] | None]] = {
    "a b c, followed_by": (
        lambda: begin().followed_by("b").where(*on("b")).followed_by("c").where(*on("c")),
        {"a", "b", "c"},
    ),
    "a b c, within": (
        lambda: begin().followed_by("b").where(*on("b")).followed_by("c").where(*on("c")).within(W),
        {"a", "b", "c"},
    ),
    "a b c, within, skip_past_last_event (a plain chain)": (
        lambda: (
            begin(PAST())
            .followed_by("b")
            .where(*on("b"))
            .followed_by("c")
            .where(*on("c"))
            .within(W)
        ),
        {"a", "b", "c"},
    ),
    "a, not c, b (middle not_followed_by), within, skip_past_last_event": (
        lambda: (
            begin(PAST())
            .not_followed_by("c")
            .where(*on("c"))
            .followed_by("b")
            .where(*on("b"))
            .within(W)
        ),
        {"a", "b", "c"},
    ),
    "a b, not c (trailing), within": (
        lambda: (
            begin().followed_by("b").where(*on("b")).not_followed_by("c").where(*on("c")).within(W)
        ),
        {"a", "b", "c"},
    ),
    "a, not c (trailing), within, skip_past_last_event (one-event matches)": (
        lambda: begin(PAST()).not_followed_by("c").where(*on("c")).within(W),
        {"a", "c"},
    ),
    "a b, not c (trailing), within, skip_past_last_event (no event is both a and b)": (
        lambda: (
            begin(PAST())
            .followed_by("b")
            .where(*on("b"))
            .not_followed_by("c")
            .where(*on("c"))
            .within(W)
        ),
        {"a", "b", "c"},
    ),
    "a (a or b), not c (trailing), within, skip_to_next (an event both a and b)": (
        lambda: (
            begin(SkipStrategy.skip_to_next())
            .followed_by("b")
            .where(*on("a"))
            .or_(*on("b"))
            .not_followed_by("c")
            .where(*on("c"))
            .within(W)
        ),
        None,  # see test_an_event_that_starts_and_ends_a_match_under_a_skip_strategy
    ),
    "a b d, not c (trailing), within, skip_past_last_event": (
        lambda: (
            begin(PAST())
            .followed_by("b")
            .where(*on("b"))
            .followed_by("d")
            .where(*on("d"))
            .not_followed_by("c")
            .where(*on("c"))
            .within(W)
        ),
        None,
    ),
    "a b, stage window": (
        lambda: begin().followed_by("b").where(*on("b")).within(W, WithinType.PREVIOUS_AND_CURRENT),
        None,  # runs do not expire in the order they started
    ),
    "a, b times(3), relaxed": (
        lambda: begin().followed_by("b").where(*on("b")).times(3),
        {"a", "b"},
    ),
    "a, b times(2, 3) (optional copies)": (
        lambda: begin().followed_by("b").where(*on("b")).times(2, 3),
        None,
    ),
    "a, b one_or_more, c (an ignore into another state)": (
        lambda: (
            begin().followed_by("b").where(*on("b")).one_or_more().followed_by("c").where(*on("c"))
        ),
        None,
    ),
    "a one_or_more first": (
        lambda: begin().one_or_more().followed_by("c").where(*on("c")),
        None,
    ),
    "a, b optional, c": (
        lambda: (
            begin().followed_by("b").where(*on("b")).optional().followed_by("c").where(*on("c"))
        ),
        None,
    ),
    "a, b one_or_more greedy, c": (
        lambda: (
            begin()
            .followed_by("b")
            .where(*on("b"))
            .one_or_more()
            .greedy()
            .followed_by("c")
            .where(*on("c"))
        ),
        None,
    ),
    "a, b one_or_more until c (an unguarded until)": (
        lambda: (
            begin()
            .followed_by("b")
            .where(*on("b"))
            .one_or_more()
            .until(lambda e: e.get("t") == "c")
        ),
        None,
    ),
    "a, followed_by_any b": (
        lambda: begin().followed_by_any("b").where(*on("b")),
        {"a", "b"},
    ),
    "a, followed_by_any b times(3)": (
        lambda: begin().followed_by_any("b").where(*on("b")).times(3),
        {"a", "b"},
    ),
    "a, next b (strict)": (lambda: begin().next("b").where(*on("b")), None),
    "a, not_next c, b": (
        lambda: begin().not_next("c").where(*on("c")).followed_by("b").where(*on("b")),
        None,
    ),
    "a, b one_or_more consecutive, c": (
        lambda: (
            begin()
            .followed_by("b")
            .where(*on("b"))
            .one_or_more()
            .consecutive()
            .followed_by("c")
            .where(*on("c"))
        ),
        None,
    ),
    "an unguarded condition": (
        lambda: begin().followed_by("b").where(lambda e: e.get("t") == "b"),
        None,
    ),
    "an unguarded or_": (
        lambda: begin().followed_by("b").where(*on("b")).or_(lambda e: True),
        None,
    ),
    "a guarded or_": (
        lambda: begin().followed_by("b").where(*on("b")).or_(*on("d")),
        {"a", "b", "d"},
    ),
    "an unguarded and a guarded condition ANDed": (
        lambda: begin().followed_by("b").where(*on("b")).where(lambda e: e["v"] > 0),
        {"a", "b"},
    ),
    "iterative conditions with guards": (
        lambda: begin().followed_by("b").where(*on_iter("b", "a")).within(W),
        {"a", "b"},
    ),
    "iterative, skip_past_last_event, within (not a plain chain)": (
        lambda: begin(PAST()).followed_by("b").where(*on_iter("b", "a")).within(W),
        None,
    ),
    "iterative, skip_past_last_event, no window": (
        lambda: begin(PAST()).followed_by("b").where(*on_iter("b", "a")),
        {"a", "b"},
    ),
    "a single stage": (lambda: begin(), {"a"}),
}


@pytest.mark.parametrize("name", list(GUARDED))
def test_event_guards_of_representative_patterns(name: str) -> None:
    build, want = GUARDED[name]
    assert vals(compile_pattern(build())) == want


def test_guards_keep_their_fields() -> None:
    p = (
        Pattern.begin("a")
        .where(*on("a"))
        .followed_by("b")
        .where(*on("B", field="kind"))
        .or_(*on("b"))
    )
    assert compile_pattern(p).event_guards == frozenset({("t", "a"), ("kind", "B"), ("t", "b")})


def _feed(nfa: NFA, stream: list[tuple[dict[str, Any], int]], skip: set[int], advance: bool):
    """Matches and timeouts of ``stream`` fed in full but for the events at ``skip`` (then
    ``advance_time`` at their time when ``advance``), then time past every deadline."""
    st_ = nfa.new_state()
    matches: list[Any] = []
    timeouts: list[Any] = []
    for i, (e, ts) in enumerate(stream):
        if i in skip:
            if advance:
                tos, ms = nfa.advance_time(st_, ts)
                timeouts += [(_ids(t.events), t.timestamp) for t in tos]
                matches += [_ids(m.events) for m in ms]
            continue
        matches += [_ids(m.events) for m in nfa.process(st_, e, ts)]
    tos, ms = nfa.advance_time(st_, 10**6)
    timeouts += [(_ids(t.events), t.timestamp) for t in tos]
    matches += [_ids(m.events) for m in ms]
    return matches, timeouts, st_.to_bytes()


def _ids(events: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    return {k: [e["id"] for e in v] for k, v in events.items()}


def test_a_left_out_event_would_have_moved_time_under_a_skip_strategy() -> None:
    """Why a skip strategy with an absence completing after several events has no guards.

    ``a1 b1 a2 d1``: a1..d1 waits for ``c`` to stay absent until 10; a2 waits for a ``b``
    until 12. An unrelated event at 10 moves time there: the absence match prunes a2
    (started before d1, its last event). Left out, time next moves past 12 at once and a2
    times out first. With ``no_skip`` nothing is pruned and both orders agree."""

    def pattern(skip: Any) -> NFA:
        return compile_pattern(
            begin(skip)
            .followed_by("b")
            .where(*on("b"))
            .followed_by("d")
            .where(*on("d"))
            .not_followed_by("c")
            .where(*on("c"))
            .within(W)
        )

    stream = [
        ({"t": "a", "id": "a1"}, 0),
        ({"t": "b", "id": "b1"}, 1),
        ({"t": "a", "id": "a2"}, 2),
        ({"t": "d", "id": "d1"}, 3),
        ({"t": "x", "id": "x1"}, 10),
    ]
    nfa = pattern(PAST())
    every = _feed(nfa, stream, set(), False)
    left_out = _feed(nfa, stream, {4}, False)
    assert every[1] == [] and left_out[1] == [({"a": ["a2"]}, 12)]
    assert nfa.event_guards is None
    nfa = pattern(SkipStrategy.no_skip())
    assert _feed(nfa, stream, set(), False)[:2] == _feed(nfa, stream, {4}, False)[:2]
    assert vals(nfa) == {"a", "b", "c", "d"}


def test_an_event_that_starts_and_ends_a_match_under_a_skip_strategy() -> None:
    """``a1 a2``: a1..a2 waits for ``c`` to stay absent until 10; a2 also started a run that
    waits for its second event until 12. An unrelated event at 10 completes the absence,
    which prunes the run a2 started (at its last event); left out, that run times out
    first. With disjoint stages (``a`` then ``b``) no such run exists."""

    def pattern(second: list[str]) -> NFA:
        p = begin(SkipStrategy.skip_past_last_event()).followed_by("s1").where(*on(second[0]))
        for t in second[1:]:
            p = p.or_(*on(t))
        return compile_pattern(p.not_followed_by("c").where(*on("c")).within(W))

    stream = [({"t": "a", "id": "a1"}, 0), ({"t": "a", "id": "a2"}, 3), ({"t": "x", "id": "x"}, 10)]
    nfa = pattern(["a", "b"])
    assert nfa.event_guards is None
    every = _feed(nfa, stream, set(), False)
    left_out = _feed(nfa, stream, {2}, False)
    assert every[:2] == ([{"a": ["a1"], "s1": ["a2"]}], [])
    assert left_out[:2] == ([{"a": ["a1"], "s1": ["a2"]}], [({"a": ["a2"]}, 13)])
    nfa = pattern(["b"])
    assert vals(nfa) == {"a", "b", "c"}
    stream = [({"t": "a", "id": "a1"}, 0), ({"t": "b", "id": "b1"}, 3), stream[2]]
    assert _feed(nfa, stream, set(), False) == _feed(nfa, stream, {2}, False)


def test_stage_windows_expire_out_of_start_order() -> None:
    """Why a stage window has no guards: a1 (started first) waits for ``c`` until 12, a2
    for ``b`` until 8. An unrelated event at 9 times out a2 first; left out, one step past
    12 times out both in the order they started."""
    nfa = compile_pattern(
        begin()
        .followed_by("b")
        .where(*on("b"))
        .within(3, WithinType.PREVIOUS_AND_CURRENT)
        .followed_by("c")
        .where(*on("c"))
        .within(10, WithinType.PREVIOUS_AND_CURRENT)
    )
    assert nfa.event_guards is None
    stream = [
        ({"t": "a", "id": "a1"}, 0),
        ({"t": "b", "id": "b1"}, 2),
        ({"t": "a", "id": "a2"}, 5),
        ({"t": "x", "id": "x1"}, 9),
    ]
    every = _feed(nfa, stream, set(), False)[1]
    left_out = _feed(nfa, stream, {3}, False)[1]
    assert every == [({"a": ["a2"]}, 8), ({"a": ["a1"], "b": ["b1"]}, 12)]
    assert left_out == [({"a": ["a1"], "b": ["b1"]}, 12), ({"a": ["a2"]}, 8)]


# -- the claim, over random patterns and streams -----------------------------------------
TYPES = ("a", "b", "c")
IRRELEVANT = ("x", "y", None)


@dataclass
class Shape:
    """A drawn pattern: the first stage, then (connector, type, iterative, times) per stage."""

    first: tuple[str, bool, int]
    rest: list[tuple[str, str, bool, int]]
    skip: str
    window: int | None
    cap: int
    stage_window: tuple[int, int] | None = None  # (stage, window between it and the previous)

    def build(self) -> Pattern:
        skips = {
            "no_skip": SkipStrategy.no_skip,
            "skip_to_next": SkipStrategy.skip_to_next,
            "skip_past_last_event": SkipStrategy.skip_past_last_event,
            "skip_to_first": lambda: SkipStrategy.skip_to_first("s0"),
            "skip_to_last": lambda: SkipStrategy.skip_to_last("s0"),
        }
        t, iterative, times = self.first
        p = Pattern.begin("s0", skip=skips[self.skip]()).where(
            *(on_iter(t) if iterative else on(t))
        )
        if times > 1:
            p = p.times(times)
        for i, (conn, t, iterative, times) in enumerate(self.rest, 1):
            p = getattr(p, conn)(f"s{i}")
            p = p.where(*(on_iter(t) if iterative else on(t)))
            if times > 1 and conn != "not_followed_by":
                p = p.times(times)
            if self.stage_window is not None and self.stage_window[0] == i:
                p = p.within(self.stage_window[1], WithinType.PREVIOUS_AND_CURRENT)
        if self.window is not None:
            p = p.within(self.window)
        return p


@st.composite
def shapes(draw: Any) -> tuple[Shape, NFA]:
    first = (draw(st.sampled_from(TYPES)), draw(st.booleans()), draw(st.sampled_from([1, 1, 1, 2])))
    rest = [
        (
            draw(
                st.sampled_from(
                    [
                        *["followed_by"] * 4,
                        "followed_by_any",
                        *["not_followed_by"] * 2,
                        "next",
                    ]
                )
            ),
            draw(st.sampled_from(TYPES)),
            draw(st.booleans()),
            draw(st.sampled_from([1, 1, 1, 2, 3])),
        )
        for _ in range(draw(st.sampled_from([0, 1, 2, 2, 3, 3])))
    ]
    shape = Shape(
        first,
        rest,
        draw(
            st.sampled_from(
                ["no_skip", "skip_to_next", "skip_past_last_event", "skip_to_first", "skip_to_last"]
            )
        ),
        draw(st.sampled_from([None, 4, 8, 15])),
        draw(st.sampled_from([10_000, 10_000, 1, 2, 3])),
        draw(
            st.one_of(
                st.none(),
                st.none(),
                st.tuples(st.integers(1, max(1, len(rest))), st.sampled_from([3, 6])),
            )
        ),
    )
    try:
        nfa = compile_pattern(shape.build(), max_partial_matches=shape.cap)
    except MalformedPatternError:
        reject()
    assume(nfa.event_guards is not None)
    note(repr(shape))
    return shape, nfa


@st.composite
def streams(draw: Any, monotone: bool) -> list[tuple[dict[str, Any], int]]:
    """Events with ids, many of them irrelevant; timestamps rising (``monotone``) or not."""
    n = draw(st.integers(1, 40))
    out = []
    ts = 0
    for i in range(n):
        if draw(st.booleans()):
            t = draw(st.sampled_from(TYPES))
        else:
            t = draw(st.sampled_from(IRRELEVANT))
        step = draw(st.integers(0, 4) if monotone else st.integers(-3, 4))
        ts = max(0, ts + step)
        e = {"id": f"e{i}", "v": draw(st.integers(0, 2))}
        if t is not None:
            e["t"] = t
        out.append((e, ts))
    return out


def _skipped(nfa: NFA, stream: list[tuple[dict[str, Any], int]]) -> set[int]:
    guards = nfa.event_guards
    assert guards is not None
    return {
        i
        for i, (e, _ts) in enumerate(stream)
        if not any(e.get(f) == v for f, v in guards)  # matches none of the guards
    }


SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@SETTINGS
@given(drawn=shapes(), stream=streams(monotone=False))
def test_left_out_events_with_time_moved_there_change_nothing(drawn: Any, stream: Any) -> None:
    """Any timestamps (also going back): ``advance_time`` at each left-out event's time."""
    _shape, nfa = drawn
    skip = _skipped(nfa, stream)
    assert _feed(nfa, stream, skip, True) == _feed(nfa, stream, set(), False)


@SETTINGS
@given(drawn=shapes(), stream=streams(monotone=True))
def test_left_out_events_change_nothing_even_for_time(drawn: Any, stream: Any) -> None:
    """Rising timestamps: the left-out events do not even move time (the runtime case)."""
    _shape, nfa = drawn
    skip = _skipped(nfa, stream)
    assert _feed(nfa, stream, skip, False) == _feed(nfa, stream, set(), False)


def _event_time(
    nfa: NFA, stream: list[tuple[dict[str, Any], int]], ooo: int, skip: set[int], mark: bool
):
    """Through ``EventTimeProcessor``, one watermark for the stream (largest time seen minus
    ``ooo``, as a single-source runtime rule): late events are told apart by the caller
    first, as ``RuleRunner.process`` does."""
    etp = EventTimeProcessor(nfa, ooo)
    state = etp.new_state()
    matches: list[Any] = []
    timeouts: list[Any] = []
    late: list[str] = []
    top = None
    for i, (e, ts) in enumerate(stream):
        top = ts if top is None or ts > top else top
        wm = top - ooo
        if ts < wm:
            late.append(e["id"])
            continue
        if i in skip:
            if mark:
                out = etp.on_watermark(state, wm)
            else:
                continue
        else:
            out = etp.on_event(state, e, ts, wm)
        assert not out.late
        matches += [_ids(m.events) for m in out.matches]
        timeouts += [(_ids(t.events), t.timestamp) for t in out.timeouts]
    out = etp.on_watermark(state, 10**6)
    matches += [_ids(m.events) for m in out.matches]
    timeouts += [(_ids(t.events), t.timestamp) for t in out.timeouts]
    doc = state_to_doc(nfa, state)
    # the out-of-order buffer's part is written once a state saw an event; its counters
    # (arrivals, largest time seen) count every event fed: the engine's part must be equal
    assert doc.pop("o", []) == [] and doc.pop("w", 10**6) == 10**6
    doc.pop("a", None)
    doc.pop("m", None)
    return matches, timeouts, late, doc


@SETTINGS
@given(drawn=shapes(), stream=streams(monotone=False), ooo=st.sampled_from([0, 2, 5]))
def test_event_time_out_of_order_with_watermarks(drawn: Any, stream: Any, ooo: int) -> None:
    _shape, nfa = drawn
    skip = _skipped(nfa, stream)
    every = _event_time(nfa, stream, ooo, set(), False)
    assert _event_time(nfa, stream, ooo, skip, True) == every
    assert _event_time(nfa, stream, ooo, skip, False) == every


@st.composite
def keyed_streams(draw: Any) -> list[tuple[str, int, Any, int]]:
    """(key, ts, event or None for a tick, index): rising time, 1-3 keys."""
    base = draw(streams(monotone=True))
    keys = draw(st.integers(1, 3))
    out: list[tuple[str, int, Any, int]] = []
    for i, (e, ts) in enumerate(base):
        if draw(st.integers(0, 5)) == 0:
            out.append(("", ts, None, i))
        out.append((f"k{draw(st.integers(0, keys - 1))}", ts, e, i))
    return out


def _keyed(nfa: NFA, stream: list[tuple[str, int, Any, int]], skip: set[int]):
    runner = KeyedRunner(nfa)
    matches: list[Any] = []
    timeouts: list[Any] = []
    for key, ts, e, i in stream:
        if e is None:
            tos, ms = runner.advance_time(ts)
            timeouts += [(k, _ids(t.events), t.timestamp) for k, t in tos]
            matches += [(k, _ids(m.events)) for k, m in ms]
        elif i not in skip:
            matches += [(key, _ids(m.events)) for m in runner.process(key, e, ts)]
    tos, ms = runner.advance_time(10**6)
    timeouts += [(k, _ids(t.events), t.timestamp) for k, t in tos]
    matches += [(k, _ids(m.events)) for k, m in ms]
    states = {k: s.to_bytes() for k, s in runner.states.items() if not s.is_idle}
    # each key's own order: keys due at one tick come in deadline order, while an event
    # that moves its key's time answers at once
    return _per_key(matches), _per_key(timeouts), states, runner._chain is not None


def _per_key(found: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for key, *rest in found:
        out.setdefault(key, []).append(rest)
    return out


@SETTINGS
@given(drawn=shapes(), stream=keyed_streams())
def test_keyed_runner_left_out_events_change_nothing(drawn: Any, stream: Any) -> None:
    _shape, nfa = drawn
    guards = nfa.event_guards
    assert guards is not None
    skip = {
        i for _k, _ts, e, i in stream if e is not None and not any(e.get(f) == v for f, v in guards)
    }
    assert _keyed(nfa, stream, skip) == _keyed(nfa, stream, set())


def test_the_generators_reach_the_chain_step_and_skip_strategies() -> None:
    """The drawn patterns with guards include plain chains (``cep.chain``), every skip
    strategy, windows and the run cap (a silently narrow generator proves nothing)."""
    seen: set[str] = set()

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(drawn=shapes())
    def collect(drawn: Any) -> None:
        shape, nfa = drawn
        seen.add(shape.skip)
        seen.add("window" if shape.window else "no window")
        seen.add("cap" if shape.cap < 10 else "no cap")
        if KeyedRunner(nfa)._chain is not None:
            seen.add("chain")
        if any(s.is_pending for s in nfa.graph):
            seen.add("trailing absence")
        if any(c == "followed_by_any" for c, *_ in shape.rest):
            seen.add("followed_by_any")
        if any(it for _c, _t, it, _n in shape.rest):
            seen.add("iterative")
        if any(n > 1 for *_x, n in shape.rest):
            seen.add("times")

    collect()
    assert seen >= {
        "no_skip",
        "skip_to_next",
        "skip_past_last_event",
        "skip_to_first",
        "skip_to_last",
        "window",
        "no window",
        "cap",
        "no cap",
        "chain",
        "trailing absence",
        "followed_by_any",
        "iterative",
        "times",
    }
