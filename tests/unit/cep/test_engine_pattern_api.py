"""Every element of the Pattern API, on small event sequences with Flink's verdicts."""

from __future__ import annotations

import datetime

from engine_helpers import E, flat, ids, named, run

from cep import Pattern, SkipStrategy, WithinType, compile_pattern

a, b, c, d = named("a"), named("b"), named("c"), named("d")


def test_next_is_strict():
    p = Pattern.begin("s").where(a).next("e").where(b)
    assert run(p, ["a1", "b1", "a2", "x", "b2"])[0] == [["a1", "b1"]]


def test_followed_by_is_relaxed():
    p = Pattern.begin("s").where(a).followed_by("e").where(b)
    assert run(p, ["a1", "x", "b1", "b2"])[0] == [["a1", "b1"]]


def test_followed_by_any_is_non_deterministic():
    p = Pattern.begin("s").where(a).followed_by_any("e").where(b)
    assert run(p, ["a1", "x", "b1", "b2"])[0] == [["a1", "b1"], ["a1", "b2"]]


def test_not_next():
    p = Pattern.begin("s").where(a).not_next("n").where(c).followed_by("e").where(b)
    assert run(p, ["a1", "c1", "b1", "a2", "x", "b2"])[0] == [["a2", "b2"]]


def test_not_followed_by_in_the_middle():
    p = Pattern.begin("s").where(a).not_followed_by("n").where(c).followed_by("e").where(b)
    assert run(p, ["a1", "c1", "b1", "a2", "x", "b2"])[0] == [["a2", "b2"]]


def test_not_followed_by_at_the_end_completes_on_timeout():
    p = Pattern.begin("s").where(a).not_followed_by("n").where(c).within(10)
    matches, timeouts, _, _ = run(p, ["a1", "a2", "c1"], ts=[1, 5, 8], until=100)
    # c1 at 8 kills both runs (within 10 of a1 and of a2)
    assert matches == [] and timeouts == []
    matches, _, _, _ = run(p, ["a1", "a2", "c1"], ts=[1, 5, 12], until=100)
    # a1's window ended at 11, before c1: an absence match; a2's run is killed by c1
    assert matches == [["a1"]]


def test_where_and_or():
    p = Pattern.begin("s").where(lambda e: e["name"] in "ab").where(lambda e: e["name"] != "b")
    assert run(p, ["a1", "b1"])[0] == [["a1"]]
    p = Pattern.begin("s").where(a).or_(b)
    assert run(p, ["a1", "b1", "c1"])[0] == [["a1"], ["b1"]]


def test_or_without_where():
    p = Pattern.begin("s").or_(b)
    assert run(p, ["a1", "b1"])[0] == [["b1"]]


def test_no_condition_matches_everything():
    assert run(Pattern.begin("s"), ["a1", "x"])[0] == [["a1"], ["x"]]


def test_times_exact():
    p = Pattern.begin("s").where(a).times(2)
    assert run(p, ["a1", "x", "a2", "a3"])[0] == [["a1", "a2"], ["a2", "a3"]]


def test_times_range():
    p = Pattern.begin("s").where(c).next("m").where(a).times(1, 2).consecutive()
    assert run(p, ["c1", "a1", "a2", "a3"])[0] == [["c1", "a1"], ["c1", "a1", "a2"]]


def test_times_zero_is_optional():
    p = Pattern.begin("s").where(c).followed_by("m").where(a).times(0, 1).followed_by("e").where(b)
    assert run(p, ["c1", "a1", "b1"])[0] == [["c1", "a1", "b1"], ["c1", "b1"]]


def test_times_or_more():
    p = (
        Pattern.begin("s")
        .where(c)
        .followed_by("m")
        .where(a)
        .times_or_more(2)
        .followed_by("e")
        .where(b)
    )
    assert run(p, ["c1", "a1", "a2", "a3", "b1"])[0] == [
        ["c1", "a1", "a2", "a3", "b1"],
        ["c1", "a1", "a2", "b1"],
    ]


def test_one_or_more_relaxed_inside():
    p = (
        Pattern.begin("s")
        .where(c)
        .followed_by("m")
        .where(a)
        .one_or_more()
        .followed_by("e")
        .where(b)
    )
    assert run(p, ["c1", "a1", "x", "a2", "b1"])[0] == [
        ["c1", "a1", "a2", "b1"],
        ["c1", "a1", "b1"],
    ]


def test_consecutive():
    p = (
        Pattern.begin("s")
        .where(c)
        .followed_by("m")
        .where(a)
        .one_or_more()
        .consecutive()
        .followed_by("e")
        .where(b)
    )
    assert run(p, ["c1", "a1", "x", "a2", "b1"])[0] == [["c1", "a1", "b1"]]


def test_allow_combinations():
    p = (
        Pattern.begin("s")
        .where(c)
        .followed_by("m")
        .where(a)
        .one_or_more()
        .allow_combinations()
        .followed_by("e")
        .where(b)
    )
    assert run(p, ["c1", "a1", "a2", "a3", "b1"])[0] == [
        ["c1", "a1", "a2", "a3", "b1"],
        ["c1", "a1", "a2", "b1"],
        ["c1", "a1", "a3", "b1"],
        ["c1", "a1", "b1"],
    ]


def test_optional():
    p = Pattern.begin("s").where(c).followed_by("m").where(a).optional().followed_by("e").where(b)
    assert run(p, ["c1", "a1", "b1"])[0] == [["c1", "a1", "b1"], ["c1", "b1"]]


def test_optional_begin():
    p = Pattern.begin("s").where(c).optional().followed_by("e").where(b)
    assert run(p, ["c1", "b1"])[0] == [["b1"], ["c1", "b1"]]


def test_greedy():
    def mk():
        return (
            Pattern.begin("s")
            .where(c)
            .followed_by("m")
            .where(lambda e: e["name"] in ("a", "d"))
            .one_or_more()
        )

    tags = ["c1", "a1", "d1", "d2"]
    lazy = mk().followed_by("e").where(d)
    assert run(lazy, tags)[0] == [["c1", "a1", "d1"], ["c1", "a1", "d1", "d2"]]
    # greedy: the next stage never takes an event the loop can take
    eager = mk().greedy().followed_by("e").where(d)
    assert run(eager, tags)[0] == []
    eager = mk().greedy().followed_by("e").where(lambda e: e["name"] in ("d", "b"))
    assert run(eager, [*tags, "b1"])[0] == [["c1", "a1", "d1", "d2", "b1"]]


def test_until():
    p = (
        Pattern.begin("s")
        .where(c)
        .followed_by("m")
        .where(a)
        .one_or_more()
        .until(d)
        .followed_by("e")
        .where(b)
    )
    assert run(p, ["c1", "a1", "a2", "d1", "a3", "b1"])[0] == [
        ["c1", "a1", "a2", "b1"],
        ["c1", "a1", "b1"],
    ]


def test_subtype():
    class Sub(dict):
        pass

    p = Pattern.begin("s").subtype(Sub)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    assert nfa.process(st, {"id": 1}, 1) == []
    assert [ids(m) for m in nfa.process(st, Sub(id=2), 2)] == [{"s": [2]}]


def test_within_first_and_last_times_out():
    p = Pattern.begin("s").where(a).followed_by("e").where(b).within(10)
    matches, timeouts, _, _ = run(p, ["a1", "b1"], ts=[1, 11], until=50)
    assert matches == [] and timeouts == [(["a1"], 11)]
    matches, timeouts, _, _ = run(p, ["a1", "b1"], ts=[1, 10], until=50)
    assert matches == [["a1", "b1"]] and timeouts == []


def test_within_timedelta():
    p = Pattern.begin("s").where(a).followed_by("e").where(b).within(datetime.timedelta(seconds=2))
    assert compile_pattern(p).window_time == 2000


def test_within_is_the_minimum_over_stages():
    p = Pattern.begin("s").where(a).within(100).followed_by("e").where(b).within(20)
    assert compile_pattern(p).window_time == 20


def test_within_previous_and_current():
    p = (
        Pattern.begin("s")
        .where(a)
        .followed_by("m")
        .where(c)
        .followed_by("e")
        .where(b)
        .within(5, WithinType.PREVIOUS_AND_CURRENT)
    )
    # a1..c1 is 20 apart (no limit on that step), c1..b1 only 4: match
    assert run(p, ["a1", "c1", "b1"], ts=[1, 21, 25])[0] == [["a1", "c1", "b1"]]
    matches, timeouts, _, _ = run(p, ["a1", "c1", "b1"], ts=[1, 21, 27], until=100)
    assert matches == [] and timeouts == [(["a1", "c1"], 26)]


def test_group_begin_and_times():
    g = Pattern.begin("x").where(a).followed_by("y").where(b)
    p = Pattern.begin(g).times(2).followed_by("e").where(d)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    out = []
    for t, tag in enumerate(["a1", "b1", "a2", "b2", "d1"]):
        out += [ids(m) for m in nfa.process(st, E(tag), t)]
    assert out == [{"x": ["a1", "a2"], "y": ["b1", "b2"], "e": ["d1"]}]


def test_group_next_followed_by_any():
    g = Pattern.begin("x").where(a).next("y").where(b)
    p = Pattern.begin("s").where(c).next(g)
    assert run(p, ["c1", "a1", "b1", "c2", "x", "a2", "b2"])[0] == [["c1", "a1", "b1"]]
    p = Pattern.begin("s").where(c).followed_by_any(g)
    assert run(p, ["c1", "a1", "b1", "a2", "b2"])[0] == [["c1", "a1", "b1"], ["c1", "a2", "b2"]]


def test_group_optional():
    g = Pattern.begin("x").where(a).followed_by("y").where(b)
    p = Pattern.begin("s").where(c).followed_by(g).optional().followed_by("e").where(d)
    assert run(p, ["c1", "a1", "b1", "d1"])[0] == [["c1", "a1", "b1", "d1"], ["c1", "d1"]]


def test_iterative_condition_sees_matched_events():
    seen = []

    def bigger(e, ctx):
        prev = ctx.events_for("m")
        seen.append(tuple(x["id"] for x in ctx.get_events_for_pattern("s")))
        return e["name"] == "a" and (not prev or e["v"] > prev[-1]["v"])

    p = Pattern.begin("s").where(c).followed_by("m").where(bigger).one_or_more().consecutive()
    nfa = compile_pattern(p)
    st = nfa.new_state()
    out = []
    for t, e in enumerate([E("c1"), E("a1", v=1), E("a2", v=3), E("a3", v=2)]):
        out += [flat(m) for m in nfa.process(st, e, t)]
    assert out == [["c1", "a1"], ["c1", "a1", "a2"]]
    assert ("c1",) in seen


def test_iterative_context_timestamp():
    stamps = []

    def cond(e, ctx):
        stamps.append(ctx.timestamp)
        return True

    nfa = compile_pattern(Pattern.begin("s").where(cond))
    nfa.process(nfa.new_state(), E("a1"), 42)
    # as in Flink, the take and the (negated) ignore edge each evaluate the condition
    assert stamps and set(stamps) == {42}


def test_match_fields():
    p = Pattern.begin("s").where(a).followed_by("e").where(b).one_or_more()
    nfa = compile_pattern(p)
    st = nfa.new_state()
    nfa.process(st, E("a1"), 5)
    (m,) = nfa.process(st, E("b1"), 9)
    assert ids(m) == {"s": ["a1"], "e": ["b1"]} and (m.start, m.end) == (5, 9)


def test_timeout_fields_and_deadline():
    p = Pattern.begin("s").where(a).followed_by("e").where(b).within(10)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    assert nfa.next_deadline(st) is None
    nfa.process(st, E("a1"), 3)
    assert nfa.next_deadline(st) == 13
    assert nfa.advance_time(st, 12) == ([], [])
    (t,), ms = nfa.advance_time(st, 13)
    assert ms == [] and ids(t) == {"s": ["a1"]} and t.timestamp == 13 and t.start == 3
    assert nfa.next_deadline(st) is None


def test_process_keeps_timeouts_found_while_advancing():
    p = Pattern.begin("s").where(a).followed_by("e").where(b).within(10)
    nfa = compile_pattern(p)
    st = nfa.new_state()
    nfa.process(st, E("a1"), 1)
    assert nfa.process(st, E("b1"), 20) == []  # a1 expired at 11: no match
    assert nfa.next_deadline(st) == 11  # a timeout waits to be collected
    (t,), _ = nfa.advance_time(st, 20)
    assert ids(t) == {"s": ["a1"]} and t.timestamp == 11


def test_skip_strategy_module_functions():
    from cep import skip

    assert skip.skip_past_last_event() == SkipStrategy.skip_past_last_event()
    assert skip.skip_to_first("a") == SkipStrategy.skip_to_first("a")
    assert skip.skip_to_first("a") != SkipStrategy.skip_to_last("a")
    assert skip.from_spec(skip.skip_to_last("x").to_spec()) == skip.skip_to_last("x")
    assert skip.from_spec("no_skip") == skip.no_skip()


def test_skip_strategies_on_times():
    a6 = ["a1", "a2", "a3", "a4", "a5", "a6"]

    def go(s):
        return run(Pattern.begin("s", skip=s).where(a).times(3), a6)[0]

    assert go(SkipStrategy.no_skip()) == [
        ["a1", "a2", "a3"],
        ["a2", "a3", "a4"],
        ["a3", "a4", "a5"],
        ["a4", "a5", "a6"],
    ]
    assert go(SkipStrategy.skip_past_last_event()) == [["a1", "a2", "a3"], ["a4", "a5", "a6"]]
    assert go(SkipStrategy.skip_to_next()) == [
        ["a1", "a2", "a3"],
        ["a2", "a3", "a4"],
        ["a3", "a4", "a5"],
        ["a4", "a5", "a6"],
    ]


def test_skip_to_first_and_last():
    def mk(s):
        return (
            Pattern.begin("s", skip=s)
            .where(lambda e: "a" in e["id"])
            .times(2)
            .next("e")
            .where(lambda e: "b" in e["id"])
            .times(2)
        )

    tags = ["ab1", "ab2", "ab3", "ab4", "ab5", "ab6", "ab7"]
    assert run(mk(SkipStrategy.skip_to_first("e")), tags[:6])[0] == [
        ["ab1", "ab2", "ab3", "ab4"],
        ["ab3", "ab4", "ab5", "ab6"],
    ]
    assert run(mk(SkipStrategy.skip_to_last("e")), tags)[0] == [
        ["ab1", "ab2", "ab3", "ab4"],
        ["ab4", "ab5", "ab6", "ab7"],
    ]


def test_skip_to_first_throw_on_miss():
    import pytest

    from cep import SkipError

    p = Pattern.begin("s", skip=SkipStrategy.skip_to_first("s").throw_exception_on_miss()).where(a)
    with pytest.raises(SkipError, match=r"Could not skip to first element of a match\."):
        run(p, ["a1"])
