"""The event-time buffer: out-of-order input, watermarks, late events, processing time."""

from __future__ import annotations

import random

from engine_helpers import E, flat, named

from cep import EventTimeProcessor, Pattern, compile_pattern

a, b, c = named("a"), named("b"), named("c")


def pattern():
    return (
        Pattern.begin("s")
        .where(a)
        .followed_by("m")
        .where(b)
        .one_or_more()
        .followed_by("e")
        .where(c)
        .within(50)
    )


def stream(seed: int, n: int = 120):
    rnd = random.Random(seed)
    ts, out = 0, []
    for i in range(n):
        ts += rnd.randint(1, 5)
        out.append((E(rnd.choice("abcx") + str(i)), ts))
    return out


def feed(proc, events, final_wm):
    st = proc.new_state()
    matches, timeouts, late = [], [], []
    for e, ts in events:
        out = proc.on_event(st, e, ts)
        matches += [flat(m) for m in out.matches]
        timeouts += [(flat(t), t.timestamp) for t in out.timeouts]
        late += [x["id"] for x in out.late]
    out = proc.on_watermark(st, final_wm)
    matches += [flat(m) for m in out.matches]
    timeouts += [(flat(t), t.timestamp) for t in out.timeouts]
    return sorted(matches), sorted(timeouts), late, st


def shuffle_within(events, bound, seed):
    """Delay each event by up to ``bound`` ms of arrival time (never more)."""
    rnd = random.Random(seed)
    keyed = [(ts + rnd.uniform(0, bound), i, e, ts) for i, (e, ts) in enumerate(events)]
    return [(e, ts) for _, _, e, ts in sorted(keyed)]


def test_shuffled_within_the_bound_gives_the_same_matches_as_sorted():
    nfa = compile_pattern(pattern())
    for seed in range(5):
        events = stream(seed)
        proc = EventTimeProcessor(nfa, max_out_of_orderness=10)
        want = feed(proc, events, 10_000)
        got = feed(proc, shuffle_within(events, 10, seed), 10_000)
        assert got[2] == []  # nothing late
        assert got[:2] == want[:2]
        assert want[0]  # the stream does produce matches


def test_same_timestamp_keeps_arrival_order():
    nfa = compile_pattern(Pattern.begin("s").where(a).next("e").where(b))
    proc = EventTimeProcessor(nfa, max_out_of_orderness=5)
    st = proc.new_state()
    out = []
    for e, ts in [(E("x1"), 9), (E("a1"), 10), (E("b1"), 10), (E("x2"), 30)]:
        out += [flat(m) for m in proc.on_event(st, e, ts).matches]
    assert out == [["a1", "b1"]]


def test_late_events_are_returned_not_dropped():
    nfa = compile_pattern(pattern())
    proc = EventTimeProcessor(nfa, max_out_of_orderness=5)
    st = proc.new_state()
    proc.on_event(st, E("a1"), 100)
    out = proc.on_event(st, E("b1"), 94)  # watermark is 95
    assert [x["id"] for x in out.late] == ["b1"]
    out = proc.on_event(st, E("b2"), 95)  # not older than the watermark: buffered
    assert out.late == []


def test_events_wait_for_the_watermark():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b))
    proc = EventTimeProcessor(nfa, max_out_of_orderness=10)
    st = proc.new_state()
    assert proc.on_event(st, E("a1"), 1).matches == []
    assert proc.on_event(st, E("b1"), 5).matches == []  # both still buffered
    assert proc.next_deadline(st) == 1
    out = proc.on_event(st, E("x"), 15)  # watermark 5 releases a1 and b1
    assert [flat(m) for m in out.matches] == [["a1", "b1"]]


def test_caller_supplied_watermark():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b).within(10))
    proc = EventTimeProcessor(nfa, max_out_of_orderness=1000)
    st = proc.new_state()
    proc.on_event(st, E("a1"), 1, watermark=0)
    out = proc.on_watermark(st, 11)
    assert [(flat(t), t.timestamp) for t in out.timeouts] == [(["a1"], 11)]
    assert [x["id"] for x in proc.on_event(st, E("b1"), 10, watermark=11).late] == ["b1"]


def test_processing_time_passes_events_straight_through():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b).within(10))
    proc = EventTimeProcessor(nfa, processing_time=True)
    st = proc.new_state()
    proc.on_event(st, E("a1"), 1)
    assert [flat(m) for m in proc.on_event(st, E("b1"), 2).matches] == [["a1", "b1"]]
    proc.on_event(st, E("a2"), 3)
    out = proc.on_watermark(st, 13)
    assert [flat(t) for t in out.timeouts] == [["a2"]]


def test_buffered_events_survive_serialisation():
    nfa = compile_pattern(Pattern.begin("s").where(a).followed_by("e").where(b))
    proc = EventTimeProcessor(nfa, max_out_of_orderness=10)
    st = proc.new_state()
    proc.on_event(st, E("a1"), 1)
    proc.on_event(st, E("b1"), 5)
    st = nfa.state_from_bytes(st.to_bytes())
    assert [flat(m) for m in proc.on_watermark(st, 5).matches] == [["a1", "b1"]]
    assert proc.on_event(st, E("a0"), 2).late[0]["id"] == "a0"
