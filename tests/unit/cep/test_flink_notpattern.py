"""Ports of Flink's NotPatternITCase (flink-libraries/flink-cep/src/test/java/org/apache/flink/
cep/nfa/NotPatternITCase.java) and of the not-followed-by-at-the-end behaviour (Flink >= 1.16,
unchanged in 1.18/1.19: ``notFollowedBy`` may end a pattern when ``within`` is set; the partial
match is emitted once the window passes without a matching event)."""

from __future__ import annotations

from flink_harness import Case, P, Run, compare_patterns, ev, flat, flink_case, name_is
from reference import ANY, Negation, Spec, Stage

F = "NotPatternITCase"
a_, b_, c_, d_ = (name_is(n) for n in "abcd")


def _five(order: str):
    es = {
        "a1": ev(40, "a", 1.0),
        "c1": ev(41, "c", 2.0),
        "b1": ev(42, "b", 3.0),
        "c2": ev(43, "c", 4.0),
        "d": ev(43, "d", 4.0),
    }
    return es, [(es[k], i + 1) for i, k in enumerate(order.split())]


def _a_not_c_d(neg: str, mid: str, mid_optional: bool = False):
    def build():
        p = getattr(P.begin("start").where(a_), neg)("notPattern").where(b_)
        p = getattr(p, mid)("middle").where(c_)
        if mid_optional:
            p = p.optional()
        return p.followed_by("end").where(d_)

    return build


def _spec(neg: str, mid_cont: str) -> Spec:
    return Spec(
        (Stage("start", a_), Stage("middle", c_, contiguity=mid_cont), Stage("end", d_)),
        negations=(Negation(neg, 0, b_),),
    )


@flink_case(F, "testNotNext")
def test_notpatternitcase_testNotNext():
    es, records = _five("a1 c1 b1 c2 d")
    return Case(
        pattern=_a_not_c_d("not_next", "followed_by_any"),
        records=records,
        expected=[[es["a1"], es["c1"], es["d"]], [es["a1"], es["c2"], es["d"]]],
        spec=_spec("not_next", ANY),
    )


@flink_case(F, "testNotNextNoMatches")
def test_notpatternitcase_testNotNextNoMatches():
    _, records = _five("a1 b1 c1 c2 d")
    return Case(
        pattern=_a_not_c_d("not_next", "followed_by"),
        records=records,
        expected=[],
        spec=_spec("not_next", "relaxed"),
    )


@flink_case(F, "testNotNextNoMatchesAtTheEnd")
def test_notpatternitcase_testNotNextNoMatchesAtTheEnd():
    _, records = _five("a1 c1 c2 d b1")
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .followed_by_any("middle")
            .where(c_)
            .followed_by_any("end")
            .where(d_)
            .not_next("notPattern")
            .where(b_)
        ),
        records=records,
        expected=[],
        spec=Spec(
            (Stage("start", a_), Stage("middle", c_, ANY), Stage("end", d_, ANY)),
            (Negation("not_next", 2, b_),),
        ),
    )


@flink_case(F, "testNotFollowedBy")
def test_notpatternitcase_testNotFollowedBy():
    es, records = _five("a1 c1 b1 c2 d")
    return Case(
        pattern=_a_not_c_d("not_followed_by", "followed_by_any"),
        records=records,
        expected=[[es["a1"], es["c1"], es["d"]]],
        spec=_spec("not_followed_by", ANY),
    )


@flink_case(F, "testNotFollowedByBeforeOptional")
def test_notpatternitcase_testNotFollowedByBeforeOptional():
    es, records = _five("a1 c1 b1 c2 d")
    return Case(
        pattern=_a_not_c_d("not_followed_by", "followed_by_any", mid_optional=True),
        records=records,
        expected=[[es["a1"], es["c1"], es["d"]]],
    )


@flink_case(F, "testTimesWithNotFollowedBy")
def test_notpatternitcase_testTimesWithNotFollowedBy():
    a1, b1, c, b2, d = (
        ev(40, "a", 1.0),
        ev(41, "b", 2.0),
        ev(42, "c", 3.0),
        ev(43, "b", 4.0),
        ev(43, "d", 4.0),
    )
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .followed_by_any("middle")
            .where(b_)
            .times(2)
            .not_followed_by("notPattern")
            .where(c_)
            .followed_by("end")
            .where(d_)
        ),
        records=[(a1, 1), (b1, 2), (c, 3), (b2, 4), (d, 5)],
        expected=[],
        spec=Spec(
            (Stage("start", a_), Stage("middle", b_, ANY, min=2, max=2), Stage("end", d_)),
            negations=(Negation("not_followed_by", 1, c_),),
        ),
    )


@flink_case(F, "testIgnoreStateOfTimesWithNotFollowedBy")
def test_notpatternitcase_testIgnoreStateOfTimesWithNotFollowedBy():
    a1, e, c1, b1 = ev(40, "a", 1.0), ev(41, "e", 2.0), ev(42, "c", 3.0), ev(43, "b", 4.0)
    c2, d1, d2 = ev(44, "c", 5.0), ev(45, "d", 6.0), ev(46, "d", 7.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .not_followed_by("notPattern")
            .where(b_)
            .followed_by_any("middle")
            .where(c_)
            .times(2)
            .optional()
            .followed_by("end")
            .where(d_)
        ),
        records=[(a1, 1), (d1, 2), (e, 1), (b1, 3), (c1, 2), (c2, 4), (d2, 5)],
        expected=[[a1, d1]],
    )


@flink_case(F, "testTimesWithNotFollowedByAfter")
def test_notpatternitcase_testTimesWithNotFollowedByAfter():
    a1, e, c1, b1 = ev(40, "a", 1.0), ev(41, "e", 2.0), ev(42, "c", 3.0), ev(43, "b", 4.0)
    b2, d1, d2 = ev(44, "b", 5.0), ev(46, "d", 7.0), ev(47, "d", 8.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .followed_by_any("middle")
            .where(b_)
            .times(2)
            .not_followed_by("notPattern")
            .where(c_)
            .followed_by("end")
            .where(d_)
        ),
        records=[(a1, 1), (d1, 2), (e, 1), (b1, 3), (b2, 3), (c1, 2), (d2, 5)],
        expected=[],
        spec=Spec(
            (Stage("start", a_), Stage("middle", b_, ANY, min=2, max=2), Stage("end", d_)),
            negations=(Negation("not_followed_by", 1, c_),),
        ),
    )


@flink_case(F, "testNotFollowedByBeforeOptionalAtTheEnd")
def test_notpatternitcase_testNotFollowedByBeforeOptionalAtTheEnd():
    es, records = _five("a1 c1 b1 c2")
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .not_followed_by("notPattern")
            .where(b_)
            .followed_by_any("end")
            .where(c_)
            .optional()
        ),
        records=records,
        expected=[[es["a1"], es["c1"]], [es["a1"]]],
    )


@flink_case(F, "testNotFollowedByBeforeOptionalTimes")
def test_notpatternitcase_testNotFollowedByBeforeOptionalTimes():
    es, records = _five("a1 c1 b1 c2 d")
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .not_followed_by("notPattern")
            .where(b_)
            .followed_by_any("middle")
            .where(c_)
            .times(2)
            .optional()
            .followed_by("end")
            .where(d_)
        ),
        records=records,
        expected=[[es["a1"], es["c1"], es["c2"], es["d"]]],
    )


@flink_case(F, "testNotFollowedByWithBranchingAtStart")
def test_notpatternitcase_testNotFollowedByWithBranchingAtStart():
    a1, b1, c1 = ev(40, "a", 1.0), ev(42, "b", 3.0), ev(41, "c", 2.0)
    a2, c2, d = ev(41, "a", 4.0), ev(43, "c", 5.0), ev(43, "d", 6.0)
    return Case(
        pattern=_a_not_c_d("not_followed_by", "followed_by"),
        records=[(a1, 1), (b1, 2), (c1, 3), (a2, 4), (c2, 5), (d, 6)],
        expected=[[a2, c2, d]],
        spec=_spec("not_followed_by", "relaxed"),
    )


# NotFollowByData
A_1, B_1, B_2, B_3 = ev(40, "a", 1.0), ev(41, "b", 2.0), ev(42, "b", 3.0), ev(42, "b", 4.0)
C_1, B_4, B_5, B_6 = ev(43, "c", 5.0), ev(42, "b", 6.0), ev(42, "b", 7.0), ev(42, "b", 8.0)
D_1 = ev(43, "d", 9.0)


def _seq(*es):
    return [(e, i) for i, e in enumerate(es)]


def _not_next_after_one_or_more(all_matches: bool, expected):
    def build():
        p = P.begin("a").where(a_)
        p = (p.followed_by_any("b*") if all_matches else p.followed_by("b*")).where(b_)
        return p.one_or_more().not_next("not c").where(c_).followed_by("d").where(d_)

    return Case(
        pattern=build,
        records=_seq(A_1, B_1, C_1, B_2, D_1),
        expected=expected,
        spec=Spec(
            (
                Stage("a", a_),
                Stage("b*", b_, ANY if all_matches else "relaxed", max=None),
                Stage("d", d_),
            ),
            negations=(Negation("not_next", 1, c_),),
        ),
    )


@flink_case(F, "testNotNextAfterOneOrMoreSkipTillNext")
def test_notpatternitcase_testNotNextAfterOneOrMoreSkipTillNext():
    return _not_next_after_one_or_more(False, [])


@flink_case(F, "testNotNextAfterOneOrMoreSkipTillAny")
def test_notpatternitcase_testNotNextAfterOneOrMoreSkipTillAny():
    return _not_next_after_one_or_more(True, [[A_1, B_2, D_1]])


def _not_followed_after_one_or_more(eager: bool, all_matches: bool, expected):
    def build():
        p = P.begin("a").where(a_)
        p = (p.followed_by_any("b*") if all_matches else p.followed_by("b*")).where(b_)
        p = p.one_or_more() if eager else p.one_or_more().allow_combinations()
        return p.not_followed_by("not c").where(c_).followed_by("d").where(d_)

    return Case(
        pattern=build,
        records=_seq(A_1, B_1, B_2, B_3, C_1, B_4, B_5, B_6, D_1),
        expected=expected,
        spec=Spec(
            (
                Stage("a", a_),
                Stage(
                    "b*",
                    b_,
                    ANY if all_matches else "relaxed",
                    max=None,
                    inner="relaxed" if eager else ANY,
                ),
                Stage("d", d_),
            ),
            negations=(Negation("not_followed_by", 1, c_),),
        ),
    )


@flink_case(F, "testNotFollowedByNextAfterOneOrMoreEager")
def test_notpatternitcase_testNotFollowedByNextAfterOneOrMoreEager():
    return _not_followed_after_one_or_more(True, False, [])


@flink_case(F, "testNotFollowedByAnyAfterOneOrMoreEager")
def test_notpatternitcase_testNotFollowedByAnyAfterOneOrMoreEager():
    return _not_followed_after_one_or_more(
        True,
        True,
        [
            [A_1, B_4, B_5, B_6, D_1],
            [A_1, B_4, B_5, D_1],
            [A_1, B_4, D_1],
            [A_1, B_5, B_6, D_1],
            [A_1, B_5, D_1],
            [A_1, B_6, D_1],
        ],
    )


@flink_case(F, "testNotFollowedByNextAfterOneOrMoreCombinations")
def test_notpatternitcase_testNotFollowedByNextAfterOneOrMoreCombinations():
    return _not_followed_after_one_or_more(False, False, [])


@flink_case(F, "testNotFollowedByAnyAfterOneOrMoreCombinations")
def test_notpatternitcase_testNotFollowedByAnyAfterOneOrMoreCombinations():
    return _not_followed_after_one_or_more(
        False,
        True,
        [
            [A_1, B_4, B_5, B_6, D_1],
            [A_1, B_4, B_5, D_1],
            [A_1, B_4, B_6, D_1],
            [A_1, B_4, D_1],
            [A_1, B_5, B_6, D_1],
            [A_1, B_5, D_1],
            [A_1, B_6, D_1],
        ],
    )


def _not_followed_before(eager: bool, all_matches: bool, zero: bool, expected):
    def build():
        p = P.begin("a").where(a_).not_followed_by("not c").where(c_)
        p = (p.followed_by_any("b*") if all_matches else p.followed_by("b*")).where(b_)
        p = p.one_or_more()
        if zero:
            p = p.optional()
        if not eager:
            p = p.allow_combinations()
        return p.followed_by("d").where(d_)

    spec = None
    if not zero:
        spec = Spec(
            (
                Stage("a", a_),
                Stage(
                    "b*",
                    b_,
                    ANY if all_matches else "relaxed",
                    max=None,
                    inner="relaxed" if eager else ANY,
                ),
                Stage("d", d_),
            ),
            negations=(Negation("not_followed_by", 0, c_),),
        )
    return Case(
        pattern=build,
        records=_seq(A_1, B_1, C_1, B_4, B_5, B_6, D_1),
        expected=expected,
        spec=spec,
    )


_EAGER_BEFORE = [
    [A_1, B_1, B_4, B_5, B_6, D_1],
    [A_1, B_1, B_4, B_5, D_1],
    [A_1, B_1, B_4, D_1],
    [A_1, B_1, D_1],
]
_COMB_BEFORE = [
    [A_1, B_1, B_4, B_5, B_6, D_1],
    [A_1, B_1, B_4, B_6, D_1],
    [A_1, B_1, B_4, B_5, D_1],
    [A_1, B_1, B_4, D_1],
    [A_1, B_1, B_5, B_6, D_1],
    [A_1, B_1, B_5, D_1],
    [A_1, B_1, B_6, D_1],
    [A_1, B_1, D_1],
]


@flink_case(F, "testNotFollowedByAnyBeforeOneOrMoreEager")
def test_notpatternitcase_testNotFollowedByAnyBeforeOneOrMoreEager():
    return _not_followed_before(True, True, False, _EAGER_BEFORE)


@flink_case(F, "testNotFollowedByAnyBeforeOneOrMoreCombinations")
def test_notpatternitcase_testNotFollowedByAnyBeforeOneOrMoreCombinations():
    return _not_followed_before(False, True, False, _COMB_BEFORE)


@flink_case(F, "testNotFollowedByBeforeOneOrMoreEager")
def test_notpatternitcase_testNotFollowedByBeforeOneOrMoreEager():
    return _not_followed_before(True, False, False, _EAGER_BEFORE)


@flink_case(F, "testNotFollowedByBeforeOneOrMoreCombinations")
def test_notpatternitcase_testNotFollowedByBeforeOneOrMoreCombinations():
    return _not_followed_before(False, False, False, _COMB_BEFORE)


@flink_case(F, "testNotFollowedByBeforeZeroOrMoreEagerSkipTillNext")
def test_notpatternitcase_testNotFollowedByBeforeZeroOrMoreEagerSkipTillNext():
    return _not_followed_before(True, False, True, _EAGER_BEFORE)


@flink_case(F, "testNotFollowedByBeforeZeroOrMoreCombinationsSkipTillNext")
def test_notpatternitcase_testNotFollowedByBeforeZeroOrMoreCombinationsSkipTillNext():
    return _not_followed_before(False, False, True, _COMB_BEFORE)


@flink_case(F, "testNotFollowedByBeforeZeroOrMoreEagerSkipTillAny")
def test_notpatternitcase_testNotFollowedByBeforeZeroOrMoreEagerSkipTillAny():
    return _not_followed_before(True, True, True, _EAGER_BEFORE)


@flink_case(F, "testNotFollowedByBeforeZeroOrMoreCombinationsSkipTillAny")
def test_notpatternitcase_testNotFollowedByBeforeZeroOrMoreCombinationsSkipTillAny():
    return _not_followed_before(False, True, True, _COMB_BEFORE)


# --- not_followed_by as the last part, with within (Flink >= 1.16) ----------------------------


@flink_case("Derived", "notFollowedByAtEndEmitsAfterWindow")
def test_notfollowedby_at_end_emits_after_window_and_reports_no_timeout():
    """Flink semantics of a trailing ``notFollowedBy`` + ``within`` (NFACompiler's pending
    state, NFA.advanceTime): the partial match is a *match* once ``ts - start >= window``
    passes without a matching event; a matching event before that discards it silently."""
    s1, m, s2 = ev(1, "start", 1.0), ev(2, "middle", 1.0), ev(3, "start", 1.0)

    def check(run: Run) -> None:
        compare_patterns([flat(x) for x in run.matches], [[s2]])
        assert run.timeouts == []

    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .not_followed_by("middle")
            .where(name_is("middle"))
            .within(5)
        ),
        records=[(s1, 1), (m, 3), (s2, 4)],
        final_advance=9,
        check=check,
        expected=[[s2]],
        expected_timeouts=set(),
        spec=Spec(
            (Stage("start", name_is("start")),),
            (Negation("not_followed_by", 0, name_is("middle")),),
            window=5,
        ),
    )
