"""PatternSet: many patterns on one stream, same output as running each alone, indexed."""

from __future__ import annotations

import random

from engine_helpers import flat

from cep import Pattern, PatternSet, compile_pattern


def E(tag: str) -> dict:
    return {"name": tag, "id": tag}


def typed(t):
    return lambda e: e["name"] == t


def make(i: int):
    a, b, c = f"a{i}", f"b{i}", f"c{i}"
    return compile_pattern(
        Pattern.begin("s")
        .where(typed(a), guard=("name", a))
        .followed_by("m")
        .where(typed(b))
        .followed_by("e")
        .where(typed(c))
        .within(30)
    )


def events(seed: int, n: int = 400, kinds: int = 6):
    rnd = random.Random(seed)
    return [(E(f"{rnd.choice('abc')}{rnd.randrange(kinds)}"), t) for t in range(n)]


def test_same_output_as_each_pattern_alone():
    nfas = {f"p{i}": make(i) for i in range(6)}
    ps = PatternSet(nfas)
    st = ps.new_state()
    alone = {n: nfa.new_state() for n, nfa in nfas.items()}
    for e, t in events(1):
        got = sorted((n, flat(m)) for n, m in ps.process(st, e, t))
        want = sorted((n, flat(m)) for n, nfa in nfas.items() for m in nfa.process(alone[n], e, t))
        assert got == want
    got_t = sorted((n, flat(x)) for n, x in ps.advance_time(st, 10_000)[0])
    want_t = sorted(
        (n, flat(x)) for n, nfa in nfas.items() for x in nfa.advance_time(alone[n], 10_000)[0]
    )
    assert got_t == want_t and want_t


def test_only_patterns_that_can_react_are_touched():
    nfas = [make(i) for i in range(50)]
    ps = PatternSet(nfas)
    st = ps.new_state()
    assert ps.candidates(st, E("a7")) == [7]
    assert ps.candidates(st, E("zzz")) == []
    ps.process(st, E("a7"), 1)
    assert ps.candidates(st, E("b3")) == [7]  # pattern 7 holds a partial match
    assert ps.candidates(st, E("a3")) == [3, 7]


def test_unguarded_patterns_are_always_tried():
    unguarded = compile_pattern(Pattern.begin("s").where(typed("q")))
    ps = PatternSet([make(0), unguarded])
    assert ps.candidates(ps.new_state(), E("zzz")) == [1]


def test_state_round_trip_and_idle_keys_are_empty():
    ps = PatternSet({"x": make(0), "y": make(1)})
    st = ps.new_state()
    ps.process(st, E("a1"), 1)
    assert set(st.states) == {1}
    st2 = ps.state_from_bytes(ps.to_bytes(st))
    assert [flat(m) for _, m in ps.process(st2, E("b1"), 2)] == []
    assert [(n, flat(m)) for n, m in ps.process(st2, E("c1"), 3)] == [("y", ["a1", "b1", "c1"])]
    assert st2.is_idle
    assert ps.next_deadline(ps.new_state()) is None


def test_event_time_in_front_of_a_pattern_set():
    from cep import EventTimeProcessor

    ps = PatternSet({"x": make(0), "y": make(1)})
    proc = EventTimeProcessor(ps, max_out_of_orderness=5)
    st = proc.new_state()
    out = []
    for e, t in [(E("a1"), 10), (E("c1"), 13), (E("b1"), 11), (E("zzz"), 20)]:
        res = proc.on_event(st, e, t)
        out += [(n, flat(m)) for n, m in res.matches]
    assert out == [("y", ["a1", "b1", "c1"])]
    st2 = ps.state_from_bytes(ps.to_bytes(st))
    assert [x["id"] for x in proc.on_event(st2, E("a0"), 1).late] == ["a0"]
