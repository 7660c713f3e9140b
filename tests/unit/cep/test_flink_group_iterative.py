"""Ports of Flink's GroupITCase and IterativeConditionsITCase (flink-libraries/flink-cep/src/
test/java/org/apache/flink/cep/nfa/GroupITCase.java, IterativeConditionsITCase.java).

Flink's ``IterativeCondition.filter(value, ctx)`` is a two-parameter callable here and
``ctx.getEventsForPattern(name)`` is ``ctx.events_for(name)``."""

from __future__ import annotations

from flink_harness import Case, P, ev, flink_case, is_sub, name_is

GR = "GroupITCase"
IT = "IterativeConditionsITCase"
a_, b_, c_, d_, e_ = (name_is(n) for n in "abcde")


def _ab():
    return P.begin("middle1").where(a_).followed_by("middle2").where(b_)


def _c_group_d(follow: str, mods: list, group=_ab, end=d_):
    def build():
        p = getattr(P.begin("start").where(c_), follow)(group())
        for name, *args in mods:
            p = getattr(p, name)(*args)
        return p.followed_by("end").where(end)

    return build


def _cabab_d():
    c, a1, b1 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "b", 3.0)
    a2, b2, d = ev(43, "a", 4.0), ev(44, "b", 5.0), ev(45, "d", 6.0)
    return (c, a1, b1, a2, b2, d), [(c, 1), (a1, 2), (b1, 3), (a2, 4), (b2, 5), (d, 6)]


@flink_case(GR, "testGroupFollowedByTimes")
def test_groupitcase_testGroupFollowedByTimes():
    (c, a1, b1, a2, b2, d), records = _cabab_d()
    return Case(
        pattern=_c_group_d("followed_by", [("times", 2)]),
        records=records,
        expected=[[c, a1, b1, a2, b2, d]],
    )


@flink_case(GR, "testGroupFollowedByOptional")
def test_groupitcase_testGroupFollowedByOptional():
    c, a1, a2, b, d = (
        ev(40, "c", 1.0),
        ev(41, "a", 2.0),
        ev(42, "a", 2.0),
        ev(43, "b", 3.0),
        ev(44, "d", 4.0),
    )
    return Case(
        pattern=_c_group_d("followed_by", [("optional",)]),
        records=[(c, 1), (a1, 2), (a2, 3), (b, 4), (d, 5)],
        expected=[[c, d], [c, a1, b, d]],
    )


@flink_case(GR, "testFollowedByGroupTimesOptional")
def test_groupitcase_testFollowedByGroupTimesOptional():
    c, a, d = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(45, "d", 3.0)
    return Case(
        pattern=_c_group_d("followed_by", [("times", 2), ("optional",)]),
        records=[(c, 1), (a, 2), (d, 3)],
        expected=[[c, d]],
    )


@flink_case(GR, "testGroupFollowedByOneOrMore")
def test_groupitcase_testGroupFollowedByOneOrMore():
    (c, a1, b1, a2, b2, d), records = _cabab_d()
    return Case(
        pattern=_c_group_d("followed_by", [("one_or_more",)]),
        records=records,
        expected=[[c, a1, b1, d], [c, a1, b1, a2, b2, d]],
    )


@flink_case(GR, "testGroupFollowedByZeroOrMore")
def test_groupitcase_testGroupFollowedByZeroOrMore():
    (c, a1, b1, a2, b2, d), records = _cabab_d()
    return Case(
        pattern=_c_group_d("followed_by", [("one_or_more",), ("optional",)]),
        records=records,
        expected=[[c, d], [c, a1, b1, d], [c, a1, b1, a2, b2, d]],
    )


def _three_ab():
    c, a1, b1 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "b", 3.0)
    a2, b2, a3, b3 = ev(43, "a", 4.0), ev(44, "b", 5.0), ev(45, "a", 4.0), ev(46, "b", 5.0)
    d = ev(47, "d", 6.0)
    es = (c, a1, b1, a2, b2, a3, b3, d)
    return es, list(zip(es, range(1, 9), strict=True))


@flink_case(GR, "testGroupFollowedByAnyTimesCombinations")
def test_groupitcase_testGroupFollowedByAnyTimesCombinations():
    (c, a1, b1, a2, b2, a3, b3, d), records = _three_ab()
    return Case(
        pattern=_c_group_d("followed_by_any", [("times", 2), ("allow_combinations",)]),
        records=records,
        expected=[[c, a1, b1, a2, b2, d], [c, a1, b1, a3, b3, d], [c, a2, b2, a3, b3, d]],
    )


@flink_case(GR, "testGroupFollowedByAnyOneOrMore")
def test_groupitcase_testGroupFollowedByAnyOneOrMore():
    (c, a1, b1, a2, b2, a3, b3, d), records = _three_ab()
    return Case(
        pattern=_c_group_d("followed_by_any", [("one_or_more",)]),
        records=records,
        expected=[
            [c, a1, b1, d],
            [c, a2, b2, d],
            [c, a3, b3, d],
            [c, a1, b1, a2, b2, d],
            [c, a2, b2, a3, b3, d],
            [c, a1, b1, a2, b2, a3, b3, d],
        ],
    )


@flink_case(GR, "testGroupNextZeroOrMore")
def test_groupitcase_testGroupNextZeroOrMore():
    c, a1, b1 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "b", 3.0)
    a2, b2, a3, b3 = ev(43, "a", 3.0), ev(44, "b", 3.0), ev(45, "a", 4.0), ev(46, "b", 3.0)
    d = ev(47, "d", 1.0)
    es = (c, a1, b1, a2, b2, a3, b3, d)
    return Case(
        pattern=_c_group_d("next", [("one_or_more",), ("optional",), ("consecutive",)]),
        records=list(zip(es, [1, 3, 4, 5, 6, 7, 8, 9], strict=True)),
        expected=[[c, d], [c, a1, b1, d], [c, a1, b1, a2, b2, d], [c, a1, b1, a2, b2, a3, b3, d]],
    )


def _group_not(kind: str):
    c, a1, b1, d = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "b", 3.0), ev(43, "d", 3.0)
    a2, b2, e = ev(44, "a", 4.0), ev(45, "b", 5.0), ev(46, "e", 6.0)
    return Case(
        pattern=lambda: (
            getattr(P.begin("start").where(c_).followed_by_any(_ab()), kind)("notPattern")
            .where(d_)
            .followed_by("end")
            .where(e_)
        ),
        records=list(zip((c, a1, b1, d, a2, b2, e), range(1, 8), strict=True)),
        expected=[[c, a2, b2, e]],
    )


@flink_case(GR, "testGroupNotFollowedBy")
def test_groupitcase_testGroupNotFollowedBy():
    return _group_not("not_followed_by")


@flink_case(GR, "testGroupNotNext")
def test_groupitcase_testGroupNotNext():
    return _group_not("not_next")


@flink_case(GR, "testGroupNest")
def test_groupitcase_testGroupNest():
    d, a1, b1, c1 = ev(40, "d", 1.0), ev(41, "a", 2.0), ev(42, "b", 3.0), ev(43, "c", 4.0)
    b2, c2, e = ev(44, "b", 5.0), ev(45, "c", 4.0), ev(46, "e", 6.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(d_)
            .followed_by(
                P.begin("middle1")
                .where(a_)
                .followed_by(P.begin("middle2").where(b_).followed_by("middle3").where(c_))
                .one_or_more()
                .optional()
            )
            .optional()
            .followed_by("end")
            .where(e_)
        ),
        records=list(zip((d, a1, b1, c1, b2, c2, e), range(1, 8), strict=True)),
        expected=[[d, e], [d, a1, e], [d, a1, b1, c1, e], [d, a1, b1, c1, b2, c2, e]],
    )


# --- IterativeConditionsITCase ------------------------------------------------------------------

S1, S2, S3, S4 = (ev(40, "start", p) for p in (1.0, 2.0, 3.0, 4.0))
M1, M2 = ev(41, "foo1", 1.0, 10), ev(42, "foo2", 2.0, 10)
M3, M4 = ev(43, "foo3", 3.0, 10), ev(43, "foo4", 1.0, 10)
NEXT_ONE, END = ev(44, "next-one", 1.0), ev(46, "end", 1.0)


def _sub_sum_below_5(value, ctx):
    if not (is_sub(value) and value["name"].startswith("foo")):
        return False
    return sum(e["price"] for e in ctx.events_for("middle")) + value["price"] < 5.0


def _branching(eager: bool, expected):
    def build():
        p = P.begin("start").where(name_is("start")).followed_by("middle").where(_sub_sum_below_5)
        p = p.one_or_more()
        if not eager:
            p = p.allow_combinations()
        return p.followed_by("end").where(name_is("end"))

    return Case(
        pattern=build,
        records=[(S1, 1), (M1, 2), (M2, 3), (S2, 4), (M3, 5), (M4, 5), (NEXT_ONE, 6), (END, 8)],
        expected=expected,
    )


@flink_case(IT, "testIterativeWithBranchingPatternEager")
def test_iterativeconditionsitcase_testIterativeWithBranchingPatternEager():
    return _branching(
        True,
        [
            [S1, END, M1, M2, M4],
            [S1, END, M2, M1],
            [S1, END, M1],
            [S2, END, M3, M4],
            [S2, END, M3],
        ],
    )


@flink_case(IT, "testIterativeWithBranchingPatternCombinations")
def test_iterativeconditionsitcase_testIterativeWithBranchingPatternCombinations():
    return _branching(
        False,
        [
            [S1, END, M1, M2, M4],
            [S1, END, M2, M1],
            [S1, END, M3, M1],
            [S2, END, M3, M4],
            [S1, END, M4, M1],
            [S1, END, M1],
            [S2, END, M3],
        ],
    )


def _start_sum_below_5(value, ctx):
    if value["name"] != "start":
        return False
    return sum(e["price"] for e in ctx.events_for("start")) + value["price"] < 5.0


def _looping_starting(eager: bool, expected):
    def build():
        p = P.begin("start").where(_start_sum_below_5).one_or_more()
        if not eager:
            p = p.allow_combinations()
        return p.optional().followed_by("end").where(name_is("end"))

    return Case(
        pattern=build,
        records=[(S1, 1), (S2, 2), (S3, 3), (END, 4)],
        expected=expected,
    )


@flink_case(IT, "testIterativeWithLoopingStartingEager")
def test_iterativeconditionsitcase_testIterativeWithLoopingStartingEager():
    return _looping_starting(True, [[S1, S2, END], [S1, END], [S2, END], [S3, END], [END]])


@flink_case(IT, "testIterativeWithLoopingStartingCombination")
def test_iterativeconditionsitcase_testIterativeWithLoopingStartingCombination():
    return _looping_starting(
        False, [[S1, S2, END], [S1, S3, END], [S1, END], [S2, END], [S3, END], [END]]
    )


def _end_if_start_sum_at_least_2(value, ctx):
    if value["name"] != "end":
        return False
    return sum(e["price"] for e in ctx.events_for("start")) >= 2.0


@flink_case(IT, "testIterativeWithPrevPatternDependency")
def test_iterativeconditionsitcase_testIterativeWithPrevPatternDependency():
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .one_or_more()
            .followed_by("end")
            .where(_end_if_start_sum_at_least_2)
        ),
        records=[(S1, 1), (S2, 2), (END, 4)],
        expected=[[S1, S2, END], [S2, END]],
    )


def _middle2_sum_at_most_5(value, ctx):
    if value["name"] != "start":
        return False
    return sum(e["price"] for e in ctx.events_for("middle2")) + value["price"] <= 5.0


@flink_case(IT, "testIterativeWithABACPattern")
def test_iterativeconditionsitcase_testIterativeWithABACPattern():
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .followed_by_any("middle1")
            .where(lambda e: is_sub(e) and e["name"].startswith("foo"))
            .followed_by("middle2")
            .where(_middle2_sum_at_most_5)
            .one_or_more()
            .followed_by("end")
            .where(name_is("end"))
        ),
        records=[
            (S1, 1),
            (M1, 2),
            (S2, 2),
            (S3, 2),
            (M2, 2),
            (S4, 2),
            (M3, 2),
            (M4, 2),
            (END, 4),
        ],
        expected=[
            [S1, S2, S3, M1, END],
            [S1, M1, S2, END],
            [S1, M2, S4, END],
            [S2, M2, S4, END],
            [S3, M2, S4, END],
        ],
    )


@flink_case(IT, "testIterativeWithPrevPatternDependencyAfterBranching")
def test_iterativeconditionsitcase_testIterativeWithPrevPatternDependencyAfterBranching():
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .one_or_more()
            .followed_by_any("middle1")
            .where(lambda e: is_sub(e) and e["name"].startswith("foo"))
            .followed_by_any("end")
            .where(_end_if_start_sum_at_least_2)
        ),
        records=[(S1, 1), (S2, 2), (M1, 4), (S3, 5), (M2, 6), (END, 7)],
        expected=[
            [S1, S2, M1, END],
            [S2, M1, END],
            [S1, S2, M2, END],
            [S1, S2, S3, M2, END],
            [S2, S3, M2, END],
            [S2, M2, END],
            [S3, M2, END],
        ],
    )


def _nest_events(breaking: bool):
    d, a1, b1, c1 = ev(40, "d", 1.0), ev(41, "a", 2.0), ev(42, "b", 3.0), ev(43, "c", 4.0)
    b2, c2, b3, c3 = ev(44, "b", 5.0), ev(45, "c", 4.0), ev(46, "b", 5.0), ev(47, "c", 4.0)
    a2, b4, c4, b5 = ev(48, "a", 2.0), ev(49, "b", 3.0), ev(50, "c", 4.0), ev(51, "b", 5.0)
    c5, b6, c6, e = ev(52, "c", 4.0), ev(53, "b", 5.0), ev(54, "c", 4.0), ev(55, "e", 6.0)
    es = [d, a1, b1, c1, b2, c2, b3, c3, a2, b4, c4]
    if breaking:
        es.append(ev(0, "breaking", 99.0))
    es += [b5, c5, b6, c6, e]
    named = dict(d=d, a1=a1, b1=b1, c1=c1, b2=b2, c2=c2, b3=b3, c3=c3, a2=a2, b4=b4, c4=c4)
    named.update(b5=b5, c5=c5, b6=b6, c6=c6, e=e)
    return named, list(zip(es, range(1, len(es) + 1), strict=True))


def _nest_times(consecutive: bool):
    def build():
        inner = P.begin("middle2").where(b_).followed_by("middle3").where(c_)
        mid = P.begin("middle1").where(a_).followed_by(inner).times(3)
        if consecutive:
            mid = mid.consecutive()
        p = P.begin("start").where(d_).followed_by_any(mid).times(0, 2)
        if consecutive:
            p = p.consecutive()
        return p.followed_by("end").where(e_)

    return build


@flink_case(GR, "testGroupNestTimes")
def test_groupitcase_testGroupNestTimes():
    n, records = _nest_events(False)
    first = [n[k] for k in ["a1", "b1", "c1", "b2", "c2", "b3", "c3"]]
    second = [n[k] for k in ["a2", "b4", "c4", "b5", "c5", "b6", "c6"]]
    return Case(
        pattern=_nest_times(False),
        records=records,
        expected=[
            [n["d"], n["e"]],
            [n["d"], *first, n["e"]],
            [n["d"], *second, n["e"]],
            [n["d"], *first, *second, n["e"]],
        ],
    )


@flink_case(GR, "testGroupNestTimesConsecutive")
def test_groupitcase_testGroupNestTimesConsecutive():
    n, records = _nest_events(True)
    first = [n[k] for k in ["a1", "b1", "c1", "b2", "c2", "b3", "c3"]]
    return Case(
        pattern=_nest_times(True),
        records=records,
        expected=[[n["d"], n["e"]], [n["d"], *first, n["e"]]],
    )


@flink_case(GR, "testGroupBegin")
def test_groupitcase_testGroupBegin():
    a1, b1, a2, b2, d = (
        ev(41, "a", 2.0),
        ev(42, "b", 3.0),
        ev(43, "a", 4.0),
        ev(44, "b", 5.0),
        ev(45, "d", 6.0),
    )
    return Case(
        pattern=lambda: P.begin(_ab()).times(1, 2).followed_by("end").where(d_),
        records=[(a1, 1), (b1, 2), (a2, 3), (b2, 4), (d, 5)],
        expected=[[a1, b1, d], [a2, b2, d], [a1, b1, a2, b2, d]],
    )


@flink_case(GR, "testGroupFollowedByOneOrMoreWithUntilCondition")
def test_groupitcase_testGroupFollowedByOneOrMoreWithUntilCondition():
    (c, a1, b1, a2, b2, d), records = _cabab_d()
    return Case(
        pattern=_c_group_d("followed_by", [("one_or_more",), ("until", d_)]),
        records=records,
        expected=[[c, a1, b1, d], [c, a1, b1, a2, b2, d]],
    )


@flink_case(GR, "testGroupStartsWithOptionalPattern")
def test_groupitcase_testGroupStartsWithOptionalPattern():
    a, c, d = ev(40, "a", 1.0), ev(41, "c", 2.0), ev(42, "d", 3.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .next(P.begin("middle1").where(b_).optional().next("middle2").where(c_))
            .next("d")
            .where(d_)
        ),
        records=[(a, 1), (c, 2), (d, 3)],
        expected=[[a, c, d]],
    )


@flink_case(GR, "testFollowedByOptionalGroupPattern")
def test_groupitcase_testFollowedByOptionalGroupPattern():
    a, d1, d2 = ev(40, "a", 1.0), ev(41, "d", 2.0), ev(42, "d", 3.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .followed_by(P.begin("middle1").where(b_).next("middle2").where(c_))
            .optional()
            .next("d")
            .where(d_)
        ),
        records=[(a, 1), (d1, 2), (d2, 3)],
        expected=[[a, d1]],
    )
