"""Ports of Flink's GreedyITCase and UntilConditionITCase (flink-libraries/flink-cep/src/test/
java/org/apache/flink/cep/nfa/GreedyITCase.java, UntilConditionITCase.java)."""

from __future__ import annotations

from flink_harness import Case, P, ev, flink_case, name_is

G = "GreedyITCase"
U = "UntilConditionITCase"
a_, c_, d_ = name_is("a"), name_is("c"), name_is("d")


def _dummy(id=1, price=1111.0):
    return ev(id, "dummy", price)


def _c_a_d(zero: bool, until=None):
    """c a* d (zero) or c a+ d, greedy."""

    def build():
        p = P.begin("start").where(c_).followed_by("middle").where(a_).one_or_more()
        if zero:
            p = p.optional()
        p = p.greedy()
        if until is not None:
            p = p.until(until)
        return p.followed_by("end").where(d_)

    return build


def _three_a():
    return ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 2.0), ev(43, "a", 2.0), ev(44, "d", 3.0)


@flink_case(G, "testGreedyZeroOrMore")
def test_greedyitcase_testGreedyZeroOrMore():
    c, a1, a2, a3, d = _three_a()
    return Case(
        pattern=_c_a_d(True),
        records=[(c, 1), (a1, 2), (a2, 3), (a3, 4), (d, 5)],
        expected=[[c, a1, a2, a3, d]],
    )


@flink_case(G, "testGreedyZeroOrMoreInBetween")
def test_greedyitcase_testGreedyZeroOrMoreInBetween():
    c, a1, a2, a3, d = _three_a()
    return Case(
        pattern=_c_a_d(True),
        records=[
            (c, 1),
            (_dummy(), 2),
            (a1, 3),
            (_dummy(), 4),
            (a2, 5),
            (_dummy(), 6),
            (a3, 7),
            (d, 8),
        ],
        expected=[[c, a1, a2, a3, d]],
    )


@flink_case(G, "testGreedyZeroOrMoreWithDummyEventsAfterQuantifier")
def test_greedyitcase_testGreedyZeroOrMoreWithDummyEventsAfterQuantifier():
    c, a1, a2, _, d = _three_a()
    return Case(
        pattern=_c_a_d(True),
        records=[(c, 1), (a1, 2), (a2, 3), (_dummy(43, 2.0), 4), (d, 5)],
        expected=[[c, a1, a2, d]],
    )


@flink_case(G, "testGreedyZeroOrMoreWithDummyEventsBeforeQuantifier")
def test_greedyitcase_testGreedyZeroOrMoreWithDummyEventsBeforeQuantifier():
    c, _, _, _, d = _three_a()
    return Case(
        pattern=_c_a_d(True),
        records=[(c, 1), (_dummy(43, 2.0), 2), (d, 5)],
        expected=[[c, d]],
    )


def _price_above_3(e):
    return e["price"] > 3.0


def _until_events():
    return ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(43, "a", 3.0), ev(45, "d", 3.0)


@flink_case(G, "testGreedyUntilZeroOrMoreWithDummyEventsAfterQuantifier")
def test_greedyitcase_testGreedyUntilZeroOrMoreWithDummyEventsAfterQuantifier():
    c, a1, a2, a3, d = _until_events()
    return Case(
        pattern=_c_a_d(True, _price_above_3),
        records=[(c, 1), (a1, 2), (a2, 3), (a3, 4), (ev(44, "a", 4.0), 5), (d, 6)],
        expected=[[c, a1, a2, a3, d]],
    )


@flink_case(G, "testGreedyUntilWithDummyEventsBeforeQuantifier")
def test_greedyitcase_testGreedyUntilWithDummyEventsBeforeQuantifier():
    c, a1, a2, a3, d = _until_events()
    return Case(
        pattern=_c_a_d(True, _price_above_3),
        records=[(c, 1), (ev(44, "a", 4.0), 2), (a1, 3), (a2, 4), (a3, 5), (d, 6)],
        expected=[[c, d]],
    )


@flink_case(G, "testGreedyOneOrMore")
def test_greedyitcase_testGreedyOneOrMore():
    c, a1, a2, a3, d = _three_a()
    return Case(
        pattern=_c_a_d(False),
        records=[(c, 1), (a1, 2), (a2, 3), (a3, 4), (d, 5)],
        expected=[[c, a1, a2, a3, d]],
    )


@flink_case(G, "testGreedyOneOrMoreInBetween")
def test_greedyitcase_testGreedyOneOrMoreInBetween():
    c, a1, a2, a3, d = _three_a()
    return Case(
        pattern=_c_a_d(False),
        records=[
            (c, 1),
            (_dummy(), 2),
            (a1, 3),
            (_dummy(), 4),
            (a2, 5),
            (_dummy(), 6),
            (a3, 7),
            (d, 8),
        ],
        expected=[[c, a1, a2, a3, d]],
    )


@flink_case(G, "testGreedyOneOrMoreWithDummyEventsAfterQuantifier")
def test_greedyitcase_testGreedyOneOrMoreWithDummyEventsAfterQuantifier():
    c, a1, a2, _, d = _three_a()
    return Case(
        pattern=_c_a_d(False),
        records=[(c, 1), (a1, 2), (a2, 3), (_dummy(43, 2.0), 4), (d, 5)],
        expected=[[c, a1, a2, d]],
    )


@flink_case(G, "testGreedyOneOrMoreWithDummyEventsBeforeQuantifier")
def test_greedyitcase_testGreedyOneOrMoreWithDummyEventsBeforeQuantifier():
    c, _, _, _, d = _three_a()
    return Case(
        pattern=_c_a_d(False),
        records=[(c, 1), (_dummy(43, 2.0), 2), (d, 5)],
        expected=[],
    )


@flink_case(G, "testGreedyUntilOneOrMoreWithDummyEventsAfterQuantifier")
def test_greedyitcase_testGreedyUntilOneOrMoreWithDummyEventsAfterQuantifier():
    c, a1, a2, a3, d = _until_events()
    return Case(
        pattern=_c_a_d(False, _price_above_3),
        records=[(c, 1), (a1, 2), (a2, 3), (a3, 4), (ev(44, "a", 4.0), 5), (d, 6)],
        expected=[[c, a1, a2, a3, d]],
    )


@flink_case(G, "testGreedyUntilOneOrMoreWithDummyEventsBeforeQuantifier")
def test_greedyitcase_testGreedyUntilOneOrMoreWithDummyEventsBeforeQuantifier():
    c, a1, a2, a3, d = _until_events()
    return Case(
        pattern=_c_a_d(False, _price_above_3),
        records=[(c, 1), (ev(44, "a", 4.0), 2), (a1, 3), (a2, 4), (a3, 5), (d, 6)],
        expected=[],
    )


@flink_case(G, "testGreedyZeroOrMoreBeforeGroupPattern")
def test_greedyitcase_testGreedyZeroOrMoreBeforeGroupPattern():
    c = ev(40, "c", 1.0)
    a1, a2, a3 = ev(40, "a", 1.0), ev(40, "a", 1.0), ev(40, "a", 1.0)
    d1, e1, d2, e2 = ev(40, "d", 1.0), ev(40, "e", 1.0), ev(40, "d", 1.0), ev(40, "e", 1.0)
    f = ev(44, "f", 3.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by("middle")
            .where(a_)
            .one_or_more()
            .optional()
            .greedy()
            .followed_by(P.begin("middle1").where(d_).followed_by("middle2").where(name_is("e")))
            .times(2)
            .followed_by("end")
            .where(name_is("f"))
        ),
        records=list(
            zip(
                [c, a1, a2, _dummy(43, 2.0), a3, d1, e1, d2, e2, f],
                range(1, 11),
                strict=True,
            )
        ),
        expected=[[c, a1, a2, a3, d1, e1, d2, e2, f]],
    )


def _end_greedy(consecutive: bool):
    c, a1, a2, a3 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 2.0), ev(43, "a", 2.0)

    def build():
        p = P.begin("start").where(c_).followed_by("end").where(a_).one_or_more().optional()
        if consecutive:
            p = p.consecutive()
        return p.greedy()

    expected = [[c], [c, a1], [c, a1, a2]] + ([] if consecutive else [[c, a1, a2, a3]])
    return Case(
        pattern=build,
        records=[(c, 1), (a1, 2), (a2, 3), (ev(44, "dummy", 2.0), 4), (a3, 5)],
        expected=expected,
    )


@flink_case(G, "testEndWithZeroOrMoreGreedy")
def test_greedyitcase_testEndWithZeroOrMoreGreedy():
    return _end_greedy(False)


@flink_case(G, "testEndWithZeroOrMoreConsecutiveGreedy")
def test_greedyitcase_testEndWithZeroOrMoreConsecutiveGreedy():
    return _end_greedy(True)


def _four_a():
    return [ev(40, "c", 1.0)] + [ev(41 + i, "a", 2.0) for i in range(4)]


@flink_case(G, "testEndWithGreedyTimesRange")
def test_greedyitcase_testEndWithGreedyTimesRange():
    c, a1, a2, a3, a4 = _four_a()
    return Case(
        pattern=lambda: (
            P.begin("start").where(c_).followed_by("end").where(a_).times(2, 5).greedy()
        ),
        records=[(c, 1), (a1, 2), (a2, 3), (a3, 4), (a4, 5), (ev(44, "dummy", 2.0), 6)],
        expected=[[c, a1, a2], [c, a1, a2, a3], [c, a1, a2, a3, a4]],
    )


@flink_case(G, "testGreedyTimesRange")
def test_greedyitcase_testGreedyTimesRange():
    c, a1, a2, a3, a4 = _four_a()
    d = ev(45, "d", 2.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by("middle")
            .where(a_)
            .times(2, 5)
            .greedy()
            .followed_by("end")
            .where(d_)
        ),
        records=[(c, 1), (a1, 2), (a2, 3), (a3, 4), (a4, 5), (d, 6)],
        expected=[[c, a1, a2, a3, a4, d]],
    )


# --- UntilConditionITCase ---------------------------------------------------------------------


def _until5(e):
    return e["price"] == 5.0


def _until_case(mods, records, expected_idx, end=True, follow="followed_by", empty_where=False):
    def build():
        p = getattr(P.begin("start").where(c_), follow)("middle")
        if not empty_where:
            p = p.where(a_)
        p = p.one_or_more()
        for m in mods:
            p = getattr(p, m)()
        p = p.until(_until5)
        return p.followed_by("end").where(_until5) if end else p

    events = [e for e, _ in records]
    return Case(
        pattern=build,
        records=records,
        expected=[[events[i] for i in m] for m in expected_idx],
    )


def _u_events(with_third: bool):
    es = [ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0)]
    if with_third:
        es.append(ev(43, "a", 4.0))
    es += [ev(44, "a", 5.0), ev(45, "a", 6.0)]
    ts = [1, 3, 4, 5, 6, 7] if with_third else [1, 3, 4, 6, 7]
    return list(zip(es, ts, strict=True))


@flink_case(U, "testUntilConditionFollowedByOneOrMore")
def test_untilconditionitcase_testUntilConditionFollowedByOneOrMore():
    return _until_case([], _u_events(False), [(0, 1, 2, 3), (0, 1, 3)])


@flink_case(U, "testUntilConditionFollowedByOneOrMoreCombinations")
def test_untilconditionitcase_testUntilConditionFollowedByOneOrMoreCombinations():
    return _until_case(
        ["allow_combinations"],
        _u_events(True),
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4), (0, 1, 4)],
    )


@flink_case(U, "testUntilConditionFollowedByOneOrMoreConsecutive")
def test_untilconditionitcase_testUntilConditionFollowedByOneOrMoreConsecutive():
    es = [ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(45, "a", 5.0), ev(46, "a", 6.0)]
    return _until_case(
        ["consecutive"],
        list(zip(es, [1, 3, 4, 7, 8], strict=True)),
        [(0, 1, 2, 3), (0, 1, 3)],
    )


@flink_case(U, "testUntilConditionFollowedByOneOrMoreConsecutive2")
def test_untilconditionitcase_testUntilConditionFollowedByOneOrMoreConsecutive2():
    es = [
        ev(40, "c", 1.0),
        ev(41, "a", 2.0),
        ev(42, "b", 3.0),
        ev(43, "a", 4.0),
        ev(45, "a", 5.0),
        ev(46, "a", 6.0),
    ]
    return _until_case(["consecutive"], list(zip(es, [1, 3, 4, 5, 7, 8], strict=True)), [(0, 1, 4)])


@flink_case(U, "testUntilConditionFollowedByZeroOrMore")
def test_untilconditionitcase_testUntilConditionFollowedByZeroOrMore():
    return _until_case(["optional"], _u_events(False), [(0, 1, 2, 3), (0, 1, 3), (0, 3)])


@flink_case(U, "testUntilConditionFollowedByZeroOrMoreCombinations")
def test_untilconditionitcase_testUntilConditionFollowedByZeroOrMoreCombinations():
    return _until_case(
        ["optional", "allow_combinations"],
        _u_events(True),
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4), (0, 1, 4), (0, 4)],
    )


@flink_case(U, "testUntilConditionFollowedByZeroOrMoreConsecutive")
def test_untilconditionitcase_testUntilConditionFollowedByZeroOrMoreConsecutive():
    es = [ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(45, "a", 5.0), ev(46, "a", 6.0)]
    return _until_case(
        ["optional", "consecutive"],
        list(zip(es, [1, 3, 4, 7, 8], strict=True)),
        [(0, 1, 2, 3), (0, 1, 3), (0, 3)],
    )


def _any_records():
    es = [ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(44, "a", 5.0), ev(45, "a", 6.0)]
    return list(zip(es, [1, 3, 4, 6, 7], strict=True))


@flink_case(U, "testUntilConditionFollowedByAnyOneOrMore")
def test_untilconditionitcase_testUntilConditionFollowedByAnyOneOrMore():
    return _until_case(
        [], _any_records(), [(0, 1, 2), (0, 1), (0, 2), (0, 4)], end=False, follow="followed_by_any"
    )


@flink_case(U, "testUntilConditionFollowedByAnyZeroOrMore")
def test_untilconditionitcase_testUntilConditionFollowedByAnyZeroOrMore():
    return _until_case(
        ["optional"],
        _any_records(),
        [(0, 1, 2), (0, 1), (0, 2), (0, 4), (0,)],
        end=False,
        follow="followed_by_any",
    )


@flink_case(U, "testUntilConditionWithEmptyWhere")
def test_untilconditionitcase_testUntilConditionWithEmptyWhere():
    es = [
        ev(40, "c", 1.0),
        ev(41, "a", 2.0),
        ev(42, "a", 3.0),
        ev(40, "d", 1.0),
        ev(44, "a", 5.0),
        ev(45, "a", 6.0),
    ]
    return _until_case(
        [],
        list(zip(es, [1, 3, 4, 5, 6, 7], strict=True)),
        [(0, 1, 2, 3), (0, 1, 2), (0, 1)],
        end=False,
        empty_where=True,
    )


def _iterative_until(zero: bool, expected_idx):
    es = [
        ev(40, "c", 1.0),
        ev(41, "a", 2.0),
        ev(42, "a", 3.0),
        ev(40, "d", 1.0),
        ev(44, "a", 5.0),
        ev(45, "a", 6.0),
    ]

    def middle_sum_is_6(value, ctx):
        return sum(e["price"] for e in ctx.events_for("middle")) == 6.0

    def build():
        p = P.begin("start").where(c_).followed_by("middle").one_or_more()
        if zero:
            p = p.optional()
        return p.until(middle_sum_is_6)

    return Case(
        pattern=build,
        records=list(zip(es, [1, 3, 4, 5, 6, 7], strict=True)),
        expected=[[es[i] for i in m] for m in expected_idx],
    )


@flink_case(U, "testIterativeUntilConditionOneOrMore")
def test_untilconditionitcase_testIterativeUntilConditionOneOrMore():
    return _iterative_until(False, [(0, 1, 2, 3), (0, 1, 2), (0, 1)])


@flink_case(U, "testIterativeUntilConditionZeroOrMore")
def test_untilconditionitcase_testIterativeUntilConditionZeroOrMore():
    return _iterative_until(True, [(0, 1, 2, 3), (0, 1, 2), (0, 1), (0,)])
