"""State serialisation: round trips at random points, compactness, sharing, errors."""

from __future__ import annotations

import random

import orjson
import pytest
from engine_helpers import E, flat, named

from cep import Pattern, SkipStrategy, StateFormatError, compile_pattern

a, b, c = named("a"), named("b"), named("c")


def patterns():
    yield (
        Pattern.begin("s")
        .where(a)
        .followed_by("m")
        .where(b)
        .one_or_more()
        .followed_by("e")
        .where(c)
        .within(40)
    )
    yield (
        Pattern.begin("s", skip=SkipStrategy.skip_past_last_event())
        .where(a)
        .followed_by_any("m")
        .where(b)
        .times(1, 3)
        .allow_combinations()
        .not_followed_by("n")
        .where(c)
        .within(30)
    )
    yield (
        Pattern.begin("s", skip=SkipStrategy.skip_to_next())
        .where(a)
        .next("m")
        .where(b)
        .optional()
        .followed_by("e")
        .where(c)
    )
    yield (
        Pattern.begin("s")
        .where(a)
        .followed_by("m")
        .where(lambda e, ctx: e["name"] == "b" and len(ctx.events_for("m")) < 2)
        .one_or_more()
        .until(c)
        .followed_by("e")
        .where(c)
    )


def drive(nfa, events, roundtrip_at: set[int]):
    st = nfa.new_state()
    out = []
    for i, (tag, ts) in enumerate(events):
        if i in roundtrip_at:
            st = nfa.state_from_bytes(st.to_bytes())
        tos, ms = nfa.advance_time(st, ts)
        out += [("T", flat(t), t.timestamp) for t in tos] + [("M", flat(m)) for m in ms]
        out += [("M", flat(m)) for m in nfa.process(st, E(tag), ts)]
    tos, ms = nfa.advance_time(st, events[-1][1] + 1000)
    out += [("T", flat(t), t.timestamp) for t in tos] + [("M", flat(m)) for m in ms]
    return out, st


@pytest.mark.parametrize("seed", range(6))
def test_round_trip_at_random_points_gives_identical_output(seed):
    rnd = random.Random(seed)
    for p in patterns():
        nfa = compile_pattern(p)
        ts = 0
        events = []
        for i in range(60):
            ts += rnd.randint(0, 4)
            events.append((rnd.choice("aabbcx") + str(i), ts))
        points = {i for i in range(len(events)) if rnd.random() < 0.3}
        plain, s1 = drive(nfa, events, set())
        tripped, s2 = drive(nfa, events, points)
        assert plain == tripped
        assert s1 == s2


def test_round_trip_of_live_state_is_equal():
    nfa = compile_pattern(next(patterns()))
    st = nfa.new_state()
    for t, tag in enumerate(["a1", "b1", "b2", "a2", "b3"]):
        nfa.process(st, E(tag), t)
    again = nfa.state_from_bytes(st.to_bytes())
    assert again == st and again.to_bytes() == st.to_bytes()
    assert nfa.next_deadline(again) == nfa.next_deadline(st)


def test_event_matched_by_many_runs_is_stored_once():
    p = Pattern.begin("s").where(a).followed_by_any("m").where(b).followed_by_any("e").where(c)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    for t, tag in enumerate(["a1", "a2", "a3", "a4", "b1"]):
        nfa.process(st, E(tag), t)
    doc = orjson.loads(st.to_bytes())
    stored = [e[3]["id"] for e in doc["e"]]
    assert sorted(stored) == ["a1", "a2", "a3", "a4", "b1"]  # b1 once, for 4 runs
    assert st.partial_match_count >= 8


def test_bytes_per_partial_match_is_small():
    p = Pattern.begin("s").where(a).followed_by("m").where(b).followed_by("e").where(c).within(1000)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    for t in range(50):
        nfa.process(
            st, {"name": "a", "id": t, "user": "u-123456", "amount": 12.5}, 1_700_000_000_000 + t
        )
    n = st.partial_match_count
    assert n == 50
    assert len(st.to_bytes()) / n < 500


def test_newer_format_is_refused_with_advice():
    nfa = compile_pattern(Pattern.begin("s").where(a))
    blob = orjson.dumps({**orjson.loads(nfa.new_state().to_bytes()), "v": 99})
    with pytest.raises(StateFormatError, match="format version 99 is not supported"):
        nfa.state_from_bytes(blob)


def test_state_of_another_pattern_is_refused():
    one = compile_pattern(Pattern.begin("s").where(a).followed_by("m").where(b))
    other = compile_pattern(Pattern.begin("x").where(a).followed_by("y").where(b))
    st = one.new_state()
    one.process(st, E("a1"), 1)
    with pytest.raises(StateFormatError, match="different pattern"):
        other.state_from_bytes(st.to_bytes())


def test_garbage_is_refused():
    nfa = compile_pattern(Pattern.begin("s").where(a))
    for blob in (b"not json", b"[]", b'{"v": 1}'):
        with pytest.raises(StateFormatError):
            nfa.state_from_bytes(blob)


def test_unserialisable_event_is_reported():
    nfa = compile_pattern(Pattern.begin("s").where(a).next("t"))
    st = nfa.new_state()
    nfa.process(st, {"name": "a", "obj": object()}, 1)
    with pytest.raises(StateFormatError, match="JSON-like"):
        st.to_bytes()
