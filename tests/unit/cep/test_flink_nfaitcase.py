"""Ports of Flink's NFAITCase (flink-libraries/flink-cep/src/test/java/org/apache/flink/cep/nfa/
NFAITCase.java, Flink 1.18/1.19): same patterns, events, timestamps and expected matches."""

from __future__ import annotations

from flink_harness import (
    Case,
    P,
    Run,
    Within,
    compare_patterns,
    ev,
    flat,
    flink_case,
    is_sub,
    name_is,
    tkey,
)
from reference import ANY, STRICT, Negation, Spec, Stage

F = "NFAITCase"


def true(_e):
    return True


a_, b_, c_, d_, e_ = (name_is(n) for n in "abcde")


def five():
    return [ev(40 + i, n, float(i + 1)) for i, n in enumerate("abcde")]


@flink_case(F, "testNoConditionNFA")
def test_nfaitcase_testNoConditionNFA():
    a, b, c, d, e = five()
    return Case(
        pattern=lambda: P.begin("start").followed_by("end"),
        records=[(a, 1), (b, 2), (c, 3), (d, 4), (e, 5)],
        expected=[[a, b], [b, c], [c, d], [d, e]],
        spec=Spec((Stage("start", true), Stage("end", true))),
    )


@flink_case(F, "testNoConditionLoopingNFA")
def test_nfaitcase_testNoConditionLoopingNFA():
    a, b, c, d, e = five()
    return Case(
        pattern=lambda: P.begin("start").followed_by("end").one_or_more(),
        records=[(a, 1), (b, 2), (c, 3), (d, 4), (e, 5)],
        expected=[
            [a, b, c, d, e],
            [a, b, c, d],
            [a, b, c],
            [a, b],
            [b, c, d, e],
            [b, c, d],
            [b, c],
            [c, d, e],
            [c, d],
            [d, e],
        ],
        spec=Spec((Stage("start", true), Stage("end", true, max=None))),
    )


@flink_case(F, "testAnyWithNoConditionNFA")
def test_nfaitcase_testAnyWithNoConditionNFA():
    a, b, c, d, e = five()
    return Case(
        pattern=lambda: P.begin("start").followed_by_any("end"),
        records=[(a, 1), (b, 2), (c, 3), (d, 4), (e, 5)],
        expected=[[a, b], [a, c], [a, d], [a, e], [b, c], [b, d], [b, e], [c, d], [c, e], [d, e]],
        spec=Spec((Stage("start", true), Stage("end", true, contiguity=ANY))),
    )


@flink_case(F, "testSimplePatternNFA")
def test_nfaitcase_testSimplePatternNFA():
    start = ev(41, "start", 1.0)
    middle = ev(42, "foo", 1.0, 10.0)
    end = ev(43, "end", 1.0)

    def mid(e):
        return is_sub(e) and e["volume"] > 5.0

    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .followed_by("middle")
            .where(mid)
            .followed_by("end")
            .where(name_is("end"))
        ),
        records=[
            (start, 1),
            (ev(43, "foobar", 1.0), 2),
            (ev(41, "barfoo", 1.0, 5.0), 3),
            (middle, 3),
            (ev(43, "start", 1.0), 4),
            (end, 5),
        ],
        expected=[[start, middle, end]],
        spec=Spec(
            (Stage("start", name_is("start")), Stage("middle", mid), Stage("end", name_is("end")))
        ),
    )


@flink_case(F, "testStrictContinuityWithResults")
def test_nfaitcase_testStrictContinuityWithResults():
    m1, end = ev(41, "a", 2.0), ev(42, "b", 4.0)
    return Case(
        pattern=lambda: P.begin("middle").where(a_).next("end").where(b_),
        records=[(m1, 3), (end, 5)],
        expected=[[m1, end]],
        spec=Spec((Stage("middle", a_), Stage("end", b_, contiguity=STRICT))),
    )


@flink_case(F, "testStrictContinuityNoResults")
def test_nfaitcase_testStrictContinuityNoResults():
    return Case(
        pattern=lambda: P.begin("middle").where(a_).next("end").where(b_),
        records=[(ev(41, "a", 2.0), 3), (ev(42, "c", 3.0), 4), (ev(43, "b", 4.0), 5)],
        expected=[],
        spec=Spec((Stage("middle", a_), Stage("end", b_, contiguity=STRICT))),
    )


def _window_events():
    es = [
        ev(1, "start", 1.0),
        ev(2, "start", 1.0),
        ev(3, "middle", 1.0),
        ev(4, "foobar", 1.0),
        ev(5, "end", 1.0),
        ev(6, "end", 1.0),
    ]
    return es, list(zip(es, [1, 2, 3, 4, 11, 13], strict=True))


def _smi(follow: str):
    """start -> middle -> end with the given follow method name."""

    def build():
        p = P.begin("start").where(name_is("start"))
        p = getattr(p, follow)("middle").where(name_is("middle"))
        return getattr(p, follow)("end").where(name_is("end"))

    return build


@flink_case(F, "testSimplePatternWithTimeWindowNFAWithinFirstAndLast")
def test_nfaitcase_testSimplePatternWithTimeWindowNFAWithinFirstAndLast():
    es, records = _window_events()
    return Case(
        pattern=lambda: _smi("followed_by")().within(10),
        records=records,
        expected=[[es[1], es[2], es[4]]],
        spec=Spec(
            (
                Stage("start", name_is("start")),
                Stage("middle", name_is("middle")),
                Stage("end", name_is("end")),
            ),
            window=10,
        ),
    )


@flink_case(F, "testSimplePatternWithTimeWindowNFAWithinPreviousAndCurrent")
def test_nfaitcase_testSimplePatternWithTimeWindowNFAWithinPreviousAndCurrent():
    es, records = _window_events()
    return Case(
        pattern=lambda: _smi("followed_by")().within(9, Within.PREVIOUS_AND_CURRENT),
        records=records,
        expected=[[es[0], es[2], es[4]], [es[1], es[2], es[4]]],
    )


_SMI_ANY_SPEC = Spec(
    (
        Stage("start", name_is("start")),
        Stage("middle", name_is("middle"), contiguity=ANY),
        Stage("end", name_is("end"), contiguity=ANY),
    ),
    window=10,
)


@flink_case(F, "testSimplePatternWithTimeoutHandlingWithinFirstAndLast")
def test_nfaitcase_testSimplePatternWithTimeoutHandlingWithinFirstAndLast():
    es, records = _window_events()

    def check(run: Run) -> None:
        assert len(run.matches) == 1

    return Case(
        pattern=lambda: _smi("followed_by_any")().within(10),
        records=records,
        check=check,
        expected_timeouts={
            tkey([es[0], es[2]], 11),
            tkey([es[1], es[2]], 12),
            tkey([es[0]], 11),
            tkey([es[1]], 12),
        },
        spec=_SMI_ANY_SPEC,
    )


@flink_case(F, "testSimplePatternWithTimeoutHandlingWithinPreviousAndCurrent")
def test_nfaitcase_testSimplePatternWithTimeoutHandlingWithinPreviousAndCurrent():
    es, records = _window_events()

    def check(run: Run) -> None:
        assert len(run.matches) == 2

    return Case(
        pattern=lambda: _smi("followed_by_any")().within(10, Within.PREVIOUS_AND_CURRENT),
        records=records,
        check=check,
        expected_timeouts={tkey([es[0], es[2]], 13), tkey([es[1], es[2]], 13)},
    )


def _pending(within_type_name: str):
    es = [
        ev(1, "start", 1.0),
        ev(2, "middle", 1.0),
        ev(3, "start", 1.0),
        ev(4, "start", 1.0),
        ev(5, "middle", 1.0),
    ]
    records = list(zip(es, [1, 4, 5, 11, 18], strict=True))

    def check(run: Run) -> None:
        # Flink collects the matches that advanceTime returns (pending not-followed-by matches)
        from_advance = [m for i, call in enumerate(run.per_call) if i % 2 == 0 for m in call]
        from_process = [m for i, call in enumerate(run.per_call) if i % 2 == 1 for m in call]
        compare_patterns([flat(m) for m in from_advance], [[es[2]], [es[3]]])
        assert from_process == []

    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .not_followed_by("middle")
            .where(name_is("middle"))
            .within(5, getattr(Within, within_type_name))
        ),
        records=records,
        check=check,
        expected=[[es[2]], [es[3]]],
        spec=Spec(
            (Stage("start", name_is("start")),),
            (Negation("not_followed_by", 0, name_is("middle")),),
            window=5,
        )
        if within_type_name == "FIRST_AND_LAST"
        else None,
    )


@flink_case(F, "testPendingStateMatchesWithinFirstAndLast")
def test_nfaitcase_testPendingStateMatchesWithinFirstAndLast():
    return _pending("FIRST_AND_LAST")


@flink_case(F, "testPendingStateMatchesWithinPreviousAndCurrent")
def test_nfaitcase_testPendingStateMatchesWithinPreviousAndCurrent():
    return _pending("PREVIOUS_AND_CURRENT")


def _branching_events():
    return (
        ev(40, "start", 1.0),
        ev(41, "foo1", 1.0, 10.0),
        ev(42, "foo2", 1.0, 10.0),
        ev(43, "foo3", 1.0, 10.0),
        ev(44, "next-one", 1.0, 2.0),
        ev(45, "next-one", 1.0, 2.0),
        ev(46, "end", 1.0),
    )


def _big(e):
    return is_sub(e) and e["volume"] > 5.0


def _next_one(e):
    return is_sub(e) and e["name"] == "next-one"


def _branching(f1: str, f2: str, f3: str):
    def build():
        p = P.begin("start").where(name_is("start"))
        p = getattr(p, f1)("middle-first").where(_big)
        p = getattr(p, f2)("middle-second").where(_next_one)
        return getattr(p, f3)("end").where(name_is("end"))

    return build


def _branching_spec(c1: str, c2: str, c3: str) -> Spec:
    return Spec(
        (
            Stage("start", name_is("start")),
            Stage("middle-first", _big, contiguity=c1),
            Stage("middle-second", _next_one, contiguity=c2),
            Stage("end", name_is("end"), contiguity=c3),
        )
    )


@flink_case(F, "testBranchingPattern")
def test_nfaitcase_testBranchingPattern():
    s, m1, m2, m3, n1, n2, end = _branching_events()
    return Case(
        pattern=_branching("followed_by_any", "followed_by_any", "followed_by_any"),
        records=list(zip((s, m1, m2, m3, n1, n2, end), [1, 3, 4, 5, 6, 7, 8], strict=True)),
        expected=[[s, m, n, end] for n in (n1, n2) for m in (m1, m2, m3)],
        spec=_branching_spec(ANY, ANY, ANY),
    )


@flink_case(F, "testBranchingPatternSkipTillNext")
def test_nfaitcase_testBranchingPatternSkipTillNext():
    s, m1, m2, m3, n1, n2, end = _branching_events()
    return Case(
        pattern=_branching("followed_by", "followed_by", "followed_by_any"),
        records=list(zip((s, m1, m2, m3, n1, n2, end), [1, 3, 4, 5, 6, 7, 8], strict=True)),
        expected=[[s, m1, n1, end]],
        spec=_branching_spec("relaxed", "relaxed", ANY),
    )


@flink_case(F, "testBranchingPatternMixedFollowedBy")
def test_nfaitcase_testBranchingPatternMixedFollowedBy():
    s, m1, m2, m3, n1, n2, end = _branching_events()
    return Case(
        pattern=_branching("followed_by_any", "followed_by", "followed_by_any"),
        records=list(zip((s, m1, m2, m3, n1, n2, end), [1, 3, 4, 5, 6, 7, 8], strict=True)),
        expected=[[s, m1, n1, end], [s, m2, n1, end], [s, m3, n1, end]],
        spec=_branching_spec(ANY, "relaxed", ANY),
    )


@flink_case(F, "testComplexBranchingAfterZeroOrMore")
def test_nfaitcase_testComplexBranchingAfterZeroOrMore():
    s = ev(40, "c", 1.0)
    m1, m2, m3 = ev(41, "a", 2.0), ev(42, "a", 3.0), ev(43, "a", 4.0)
    e1, e2, e3, e4 = ev(44, "b", 5.0), ev(45, "d", 6.0), ev(46, "d", 7.0), ev(47, "e", 8.0)
    middles = [[m1, m2, m3], [m1, m2], [m1, m3], [m2, m3], [m1], [m2], [m3], []]
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by_any("middle")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .optional()
            .followed_by_any("end1")
            .where(b_)
            .followed_by_any("end2")
            .where(d_)
            .followed_by_any("end3")
            .where(e_)
        ),
        records=list(zip((s, m1, m2, m3, e1, e2, e3, e4), [1, 3, 4, 5, 6, 7, 8, 9], strict=True)),
        expected=[[s, *m, e1, d, e4] for d in (e2, e3) for m in middles],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle", a_, contiguity=ANY, max=None, inner=ANY, optional=True),
                Stage("end1", b_, contiguity=ANY),
                Stage("end2", d_, contiguity=ANY),
                Stage("end3", e_, contiguity=ANY),
            )
        ),
    )


@flink_case(F, "testZeroOrMore")
def test_nfaitcase_testZeroOrMore():
    s, m1, m2, e1 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(44, "b", 5.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by_any("middle")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .optional()
            .followed_by("end1")
            .where(b_)
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (e1, 6)],
        expected=[[s, m1, m2, e1], [s, m1, e1], [s, m2, e1], [s, e1]],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle", a_, contiguity=ANY, max=None, inner=ANY, optional=True),
                Stage("end1", b_),
            )
        ),
    )


@flink_case(F, "testEagerZeroOrMore")
def test_nfaitcase_testEagerZeroOrMore():
    s, m1, m2, m3 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(43, "a", 4.0)
    e1 = ev(44, "b", 5.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by("middle")
            .where(a_)
            .one_or_more()
            .optional()
            .followed_by("end1")
            .where(b_)
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (ev(50, "d", 6.0), 5), (m3, 6), (e1, 7)],
        expected=[[s, m1, m2, m3, e1], [s, m1, m2, e1], [s, m1, e1], [s, e1]],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle", a_, max=None, optional=True),
                Stage("end1", b_),
            )
        ),
    )


@flink_case(F, "testBeginWithZeroOrMore")
def test_nfaitcase_testBeginWithZeroOrMore():
    m1, m2, m3, end = ev(40, "a", 2.0), ev(41, "a", 3.0), ev(41, "a", 3.0), ev(42, "b", 4.0)
    return Case(
        pattern=lambda: (
            P.begin("middle").where(a_).one_or_more().optional().followed_by("end").where(b_)
        ),
        records=[(m1, 3), (m2, 4), (m3, 5), (end, 6)],
        expected=[
            [m1, m2, m3, end],
            [m1, m2, end],
            [m2, m3, end],
            [m1, end],
            [m2, end],
            [m3, end],
            [end],
        ],
        spec=Spec((Stage("middle", a_, max=None, optional=True), Stage("end", b_))),
    )


@flink_case(F, "testZeroOrMoreAfterZeroOrMore")
def test_nfaitcase_testZeroOrMoreAfterZeroOrMore():
    s, m1, m2, m3 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "d", 3.0), ev(43, "d", 4.0)
    end = ev(44, "e", 4.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by_any("middle-first")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .optional()
            .followed_by("middle-second")
            .where(d_)
            .one_or_more()
            .allow_combinations()
            .optional()
            .followed_by("end")
            .where(e_)
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (m3, 5), (end, 6)],
        expected=[
            [s, m1, m2, m3, end],
            [s, m1, m2, end],
            [s, m2, m3, end],
            [s, m2, end],
            [s, m1, end],
            [s, end],
        ],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle-first", a_, contiguity=ANY, max=None, inner=ANY, optional=True),
                Stage("middle-second", d_, max=None, inner=ANY, optional=True),
                Stage("end", e_),
            )
        ),
    )


@flink_case(F, "testZeroOrMoreAfterBranching")
def test_nfaitcase_testZeroOrMoreAfterBranching():
    s, m1, m2 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0)
    merging, k1, k2, end = ev(42, "f", 3.0), ev(43, "d", 4.0), ev(44, "d", 4.0), ev(45, "e", 4.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by_any("branching")
            .where(a_)
            .followed_by_any("merging")
            .where(name_is("f"))
            .followed_by_any("kleene")
            .where(d_)
            .one_or_more()
            .allow_combinations()
            .optional()
            .followed_by("end")
            .where(e_)
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (merging, 5), (k1, 6), (k2, 7), (end, 8)],
        expected=[[s, m, merging, *k, end] for m in (m1, m2) for k in ([], [k1], [k2], [k1, k2])],
    )


@flink_case(F, "testStrictContinuityNoResultsAfterZeroOrMore")
def test_nfaitcase_testStrictContinuityNoResultsAfterZeroOrMore():
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(d_)
            .followed_by("middle")
            .where(a_)
            .one_or_more()
            .optional()
            .next("end")
            .where(b_)
        ),
        records=[
            (ev(40, "d", 2.0), 1),
            (ev(41, "a", 2.0), 2),
            (ev(42, "a", 2.0), 3),
            (ev(43, "c", 3.0), 4),
            (ev(44, "b", 4.0), 5),
        ],
        expected=[],
        spec=Spec(
            (
                Stage("start", d_),
                Stage("middle", a_, max=None, optional=True),
                Stage("end", b_, contiguity=STRICT),
            )
        ),
    )


@flink_case(F, "testStrictContinuityResultsAfterZeroOrMore")
def test_nfaitcase_testStrictContinuityResultsAfterZeroOrMore():
    s, m1, m2, end = ev(40, "d", 2.0), ev(41, "a", 2.0), ev(42, "a", 2.0), ev(43, "b", 4.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(d_)
            .followed_by_any("middle")
            .where(a_)
            .one_or_more()
            .optional()
            .allow_combinations()
            .next("end")
            .where(b_)
        ),
        records=[(s, 1), (m1, 2), (m2, 3), (end, 5)],
        expected=[[s, m1, m2, end], [s, m2, end]],
        spec=Spec(
            (
                Stage("start", d_),
                Stage("middle", a_, contiguity=ANY, max=None, inner=ANY, optional=True),
                Stage("end", b_, contiguity=STRICT),
            )
        ),
    )


@flink_case(F, "testAtLeastOne")
def test_nfaitcase_testAtLeastOne():
    s, m1, m2, e1 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(44, "b", 5.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by_any("middle")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .followed_by_any("end1")
            .where(b_)
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (e1, 6)],
        expected=[[s, m1, m2, e1], [s, m1, e1], [s, m2, e1]],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle", a_, contiguity=ANY, max=None, inner=ANY),
                Stage("end1", b_, contiguity=ANY),
            )
        ),
    )


@flink_case(F, "testBeginWithAtLeastOne")
def test_nfaitcase_testBeginWithAtLeastOne():
    s1, s2, s3, e1 = ev(41, "a", 2.0), ev(42, "a", 3.0), ev(42, "a", 4.0), ev(44, "b", 5.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .followed_by("end")
            .where(b_)
        ),
        records=[(s1, 3), (s2, 4), (s3, 5), (e1, 6)],
        expected=[
            [s1, s2, s3, e1],
            [s1, s2, e1],
            [s1, s3, e1],
            [s2, s3, e1],
            [s1, e1],
            [s2, e1],
            [s3, e1],
        ],
        spec=Spec((Stage("start", a_, max=None, inner=ANY), Stage("end", b_))),
    )


@flink_case(F, "testNextZeroOrMore")
def test_nfaitcase_testNextZeroOrMore():
    s = ev(40, "start", 1.0)
    m1, m2, m3 = ev(40, "middle", 2.0), ev(40, "middle", 3.0), ev(40, "middle", 4.0)
    end = ev(46, "end", 1.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(name_is("start"))
            .next("middle")
            .where(name_is("middle"))
            .one_or_more()
            .optional()
            .consecutive()
            .followed_by("end")
            .where(name_is("end"))
        ),
        records=[(s, 1), (ev(1, "event", 1.0), 2), (m1, 3), (m2, 4), (m3, 5), (end, 6)],
        expected=[[s, end]],
        spec=Spec(
            (
                Stage("start", name_is("start")),
                Stage(
                    "middle",
                    name_is("middle"),
                    contiguity=STRICT,
                    max=None,
                    optional=True,
                    inner=STRICT,
                ),
                Stage("end", name_is("end")),
            )
        ),
    )


@flink_case(F, "testAtLeastOneEager")
def test_nfaitcase_testAtLeastOneEager():
    s, m1, m2, m3 = ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(43, "a", 4.0)
    e1 = ev(44, "b", 5.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by_any("middle")
            .where(a_)
            .one_or_more()
            .followed_by_any("end1")
            .where(b_)
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (m3, 5), (e1, 6)],
        expected=[
            [s, m1, m2, m3, e1],
            [s, m1, m2, e1],
            [s, m2, m3, e1],
            [s, m3, e1],
            [s, m2, e1],
            [s, m1, e1],
        ],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle", a_, contiguity=ANY, max=None),
                Stage("end1", b_, contiguity=ANY),
            )
        ),
    )


@flink_case(F, "testOptional")
def test_nfaitcase_testOptional():
    s, m, e1 = ev(40, "c", 1.0), ev(43, "a", 4.0), ev(44, "b", 5.0)
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by("middle")
            .where(a_)
            .optional()
            .followed_by("end1")
            .where(b_)
        ),
        records=[(s, 1), (m, 5), (e1, 6)],
        expected=[[s, m, e1], [s, e1]],
        spec=Spec((Stage("start", c_), Stage("middle", a_, optional=True), Stage("end1", b_))),
    )


# ConsecutiveData
def cd():
    return (
        ev(40, "c", 1.0),
        ev(41, "a", 2.0),
        ev(42, "a", 3.0),
        ev(43, "a", 4.0),
        ev(43, "a", 5.0),
        ev(44, "b", 5.0),
    )


def _f():
    return ev(23, "f", 1.0)


def _c_a_b(first: str, mods: list):
    """start(c) <first> middle(a) <mods...> followed_by end1(b)."""

    def build():
        p = getattr(P.begin("start").where(c_), first)("middle").where(a_)
        for name, *args in mods:
            p = getattr(p, name)(*args)
        return p.followed_by("end1").where(b_)

    return build


def _cab_spec(cont: str, **middle) -> Spec:
    return Spec(
        (Stage("start", c_), Stage("middle", a_, contiguity=cont, **middle), Stage("end1", b_))
    )


@flink_case(F, "testTimes")
def test_nfaitcase_testTimes():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("next", [("times", 2), ("allow_combinations",)]),
        records=[(s, 1), (m1, 2), (m2, 3), (m3, 4), (e, 6)],
        expected=[[s, m1, m2, e], [s, m1, m3, e]],
        spec=_cab_spec(STRICT, min=2, max=2, inner=ANY),
    )


@flink_case(F, "testStartWithTimes")
def test_nfaitcase_testStartWithTimes():
    _, m1, m2, m3, _, e = cd()
    return Case(
        pattern=lambda: (
            P.begin("middle").where(a_).times(2).consecutive().followed_by("end1").where(b_)
        ),
        records=[(m1, 2), (m2, 3), (m3, 4), (e, 6)],
        expected=[[m1, m2, e], [m2, m3, e]],
        spec=Spec((Stage("middle", a_, min=2, max=2, inner=STRICT), Stage("end1", b_))),
    )


@flink_case(F, "testTimesNonStrictWithNext")
def test_nfaitcase_testTimesNonStrictWithNext():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("next", [("times", 2), ("allow_combinations",)]),
        records=[(s, 1), (m1, 2), (_f(), 3), (m2, 4), (_f(), 5), (m3, 6), (e, 7)],
        expected=[[s, m1, m2, e], [s, m1, m3, e]],
        spec=_cab_spec(STRICT, min=2, max=2, inner=ANY),
    )


@flink_case(F, "testTimesNotStrictWithFollowedByEager")
def test_nfaitcase_testTimesNotStrictWithFollowedByEager():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("followed_by", [("times", 2)]),
        records=[(s, 1), (m1, 2), (m2, 4), (m3, 6), (e, 7)],
        expected=[[s, m1, m2, e]],
        spec=_cab_spec("relaxed", min=2, max=2),
    )


@flink_case(F, "testTimesNotStrictWithFollowedByNotEager")
def test_nfaitcase_testTimesNotStrictWithFollowedByNotEager():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("followed_by_any", [("times", 2), ("allow_combinations",)]),
        records=[(s, 1), (m1, 2), (m2, 4), (m3, 6), (e, 7)],
        expected=[[s, m1, m2, e], [s, m3, m2, e], [s, m3, m1, e]],
        spec=_cab_spec(ANY, min=2, max=2, inner=ANY),
    )


@flink_case(F, "testTimesStrictWithNextAndConsecutive")
def test_nfaitcase_testTimesStrictWithNextAndConsecutive():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("next", [("times", 2), ("consecutive",)]),
        records=[(s, 1), (m1, 2), (_f(), 3), (m2, 4), (m3, 6), (e, 7)],
        expected=[],
        spec=_cab_spec(STRICT, min=2, max=2, inner=STRICT),
    )


@flink_case(F, "testStartWithOptional")
def test_nfaitcase_testStartWithOptional():
    s, e1 = ev(40, "c", 1.0), ev(44, "b", 5.0)
    return Case(
        pattern=lambda: P.begin("start").where(c_).optional().followed_by("end1").where(b_),
        records=[(s, 1), (e1, 6)],
        expected=[[s, e1], [e1]],
        spec=Spec((Stage("start", c_, optional=True), Stage("end1", b_))),
    )


@flink_case(F, "testEndWithZeroOrMore")
def test_nfaitcase_testEndWithZeroOrMore():
    s, m1, m2, m3, _, _ = cd()
    return Case(
        pattern=lambda: (
            P.begin("start").where(c_).followed_by("middle").where(a_).one_or_more().optional()
        ),
        records=[(s, 1), (m1, 3), (m2, 4), (m3, 5)],
        expected=[[s, m1, m2, m3], [s, m1, m2], [s, m1], [s]],
        spec=Spec((Stage("start", c_), Stage("middle", a_, max=None, optional=True))),
    )


@flink_case(F, "testStartAndEndWithZeroOrMore")
def test_nfaitcase_testStartAndEndWithZeroOrMore():
    s, m1, m2, m3, _, _ = cd()
    e1, e2, e3 = ev(44, "d", 5.0), ev(45, "d", 5.0), ev(46, "d", 5.0)
    return Case(
        pattern=lambda: P.begin("start").where(a_).one_or_more().optional(),
        records=[(s, 1), (m1, 3), (m2, 4), (m3, 5), (e1, 6), (e2, 6), (e3, 6)],
        expected=[[m1, m2, m3], [m1, m2], [m1], [m2, m3], [m2], [m3]],
        spec=Spec((Stage("start", a_, max=None, optional=True),)),
    )


@flink_case(F, "testEndWithOptional")
def test_nfaitcase_testEndWithOptional():
    s, m1 = ev(40, "c", 1.0), ev(41, "a", 2.0)
    return Case(
        pattern=lambda: P.begin("start").where(c_).followed_by("middle").where(a_).optional(),
        records=[(s, 1), (m1, 3)],
        expected=[[s, m1], [s]],
        spec=Spec((Stage("start", c_), Stage("middle", a_, optional=True))),
    )


@flink_case(F, "testEndWithOneOrMore")
def test_nfaitcase_testEndWithOneOrMore():
    s, m1, m2, m3, _, _ = cd()
    return Case(
        pattern=lambda: P.begin("start").where(c_).followed_by("middle").where(a_).one_or_more(),
        records=[(s, 1), (m1, 3), (m2, 4), (m3, 5)],
        expected=[[s, m1, m2, m3], [s, m1, m2], [s, m1]],
        spec=Spec((Stage("start", c_), Stage("middle", a_, max=None))),
    )


@flink_case(F, "testTimesNonStrictOptional1")
def test_nfaitcase_testTimesNonStrictOptional1():
    s, _, _, _, _, e = cd()
    return Case(
        pattern=_c_a_b("followed_by", [("times", 3), ("optional",)]),
        records=[(s, 1), (_f(), 2), (e, 7)],
        expected=[[s, e]],
        spec=_cab_spec("relaxed", min=3, max=3, optional=True),
    )


_OPT_RECORDS_TS = [1, 2, 3, 4, 5, 6, 7]


def _opt_records():
    s, m1, m2, m3, _, e = cd()
    return (s, m1, m2, m3, e), list(
        zip((s, _f(), m1, _f(), m2, m3, e), _OPT_RECORDS_TS, strict=True)
    )


@flink_case(F, "testTimesNonStrictOptional2")
def test_nfaitcase_testTimesNonStrictOptional2():
    (s, m1, m2, m3, e), records = _opt_records()
    return Case(
        pattern=_c_a_b("followed_by_any", [("times", 2), ("allow_combinations",), ("optional",)]),
        records=records,
        expected=[[s, m1, m2, e], [s, m1, m3, e], [s, m2, m3, e], [s, e]],
        spec=_cab_spec(ANY, min=2, max=2, inner=ANY, optional=True),
    )


@flink_case(F, "testTimesNonStrictOptional3")
def test_nfaitcase_testTimesNonStrictOptional3():
    (s, m1, m2, m3, e), records = _opt_records()
    return Case(
        pattern=_c_a_b("followed_by_any", [("times", 2), ("optional",)]),
        records=records,
        expected=[[s, m1, m2, e], [s, m2, m3, e], [s, e]],
        spec=_cab_spec(ANY, min=2, max=2, optional=True),
    )


@flink_case(F, "testTimesStrictOptional")
def test_nfaitcase_testTimesStrictOptional():
    (s, _m1, m2, m3, e), records = _opt_records()
    return Case(
        pattern=_c_a_b("followed_by_any", [("times", 2), ("consecutive",), ("optional",)]),
        records=records,
        expected=[[s, m2, m3, e], [s, e]],
        spec=_cab_spec(ANY, min=2, max=2, inner=STRICT, optional=True),
    )


@flink_case(F, "testOneOrMoreStrictOptional")
def test_nfaitcase_testOneOrMoreStrictOptional():
    (s, m1, m2, m3, e), records = _opt_records()
    return Case(
        pattern=_c_a_b("followed_by_any", [("one_or_more",), ("consecutive",), ("optional",)]),
        records=records,
        expected=[[s, m2, m3, e], [s, m1, e], [s, m2, e], [s, m3, e], [s, e]],
        spec=_cab_spec(ANY, max=None, inner=STRICT, optional=True),
    )


@flink_case(F, "testTimesStrictOptional1")
def test_nfaitcase_testTimesStrictOptional1():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("next", [("times", 2), ("consecutive",), ("optional",)]),
        records=[(s, 1), (m1, 3), (m2, 5), (m3, 6), (e, 7)],
        expected=[[s, m1, m2, e], [s, e]],
        spec=_cab_spec(STRICT, min=2, max=2, inner=STRICT, optional=True),
    )


@flink_case(F, "testOptionalTimesNonStrictWithNext")
def test_nfaitcase_testOptionalTimesNonStrictWithNext():
    s, m1, m2, m3, _, e = cd()
    return Case(
        pattern=_c_a_b("next", [("times", 2), ("allow_combinations",), ("optional",)]),
        records=[(s, 1), (m1, 2), (_f(), 3), (m2, 4), (_f(), 5), (m3, 6), (e, 7)],
        expected=[[s, m1, m2, e], [s, m1, m3, e], [s, e]],
        spec=_cab_spec(STRICT, min=2, max=2, inner=ANY, optional=True),
    )


def _one_or_more_records():
    s, m1, m2, m3, m4, e = cd()
    d = ev(50, "d", 6.0)
    return (s, m1, m2, m3, m4, e), [
        (s, 1),
        (d, 2),
        (m1, 3),
        (m2, 4),
        (m3, 4),
        (ev(50, "d", 6.0), 5),
        (m4, 6),
        (e, 7),
    ]


def _one_or_more_case(inner: str, zero: bool, expected_middles):
    (s, m1, m2, m3, m4, e), records = _one_or_more_records()
    ms = {1: m1, 2: m2, 3: m3, 4: m4}
    mods = [("one_or_more",)] + ([("optional",)] if zero else [])
    mods += {STRICT: [("consecutive",)], "relaxed": [], ANY: [("allow_combinations",)]}[inner]
    return Case(
        pattern=_c_a_b("followed_by", mods),
        records=records,
        expected=[[s, *[ms[i] for i in mid], e] for mid in expected_middles],
        spec=_cab_spec("relaxed", max=None, inner=inner, optional=zero),
    )


@flink_case(F, "testStrictOneOrMore")
def test_nfaitcase_testStrictOneOrMore():
    return _one_or_more_case(STRICT, False, [(1, 2, 3), (1, 2), (1,)])


@flink_case(F, "testSkipTillNextOneOrMore")
def test_nfaitcase_testSkipTillNextOneOrMore():
    return _one_or_more_case("relaxed", False, [(1, 2, 3, 4), (1, 2, 3), (1, 2), (1,)])


@flink_case(F, "testSkipTillAnyOneOrMore")
def test_nfaitcase_testSkipTillAnyOneOrMore():
    return _one_or_more_case(
        ANY,
        False,
        [(1, 2, 3, 4), (1, 3, 4), (1, 2, 3), (1, 2, 4), (1, 2), (1, 3), (1, 4), (1,)],
    )


@flink_case(F, "testStrictEagerZeroOrMore")
def test_nfaitcase_testStrictEagerZeroOrMore():
    return _one_or_more_case(STRICT, True, [(1, 2, 3), (1, 2), (1,), ()])


@flink_case(F, "testSkipTillAnyZeroOrMore")
def test_nfaitcase_testSkipTillAnyZeroOrMore():
    return _one_or_more_case(
        ANY,
        True,
        [(1, 2, 3, 4), (1, 2, 4), (1, 3, 4), (1, 4), (1, 2, 3), (1, 2), (1, 3), (1,), ()],
    )


@flink_case(F, "testSkipTillNextZeroOrMore")
def test_nfaitcase_testSkipTillNextZeroOrMore():
    return _one_or_more_case("relaxed", True, [(1, 2, 3, 4), (1, 2, 3), (1, 2), (1,), ()])


@flink_case(F, "testTimesStrict")
def test_nfaitcase_testTimesStrict():
    (s, _m1, m2, m3, e), records = _opt_records()
    return Case(
        pattern=_c_a_b("followed_by_any", [("times", 2), ("consecutive",)]),
        records=records,
        expected=[[s, m2, m3, e]],
        spec=_cab_spec(ANY, min=2, max=2, inner=STRICT),
    )


@flink_case(F, "testTimesNonStrict")
def test_nfaitcase_testTimesNonStrict():
    (s, m1, m2, m3, e), records = _opt_records()
    return Case(
        pattern=_c_a_b("followed_by_any", [("times", 2), ("allow_combinations",)]),
        records=records,
        expected=[[s, m1, m2, e], [s, m1, m3, e], [s, m2, m3, e]],
        spec=_cab_spec(ANY, min=2, max=2, inner=ANY),
    )


def _start_strict(optional: bool):
    s, m1, m2, m3, _, _ = cd()

    def build():
        p = P.begin("start").where(a_).one_or_more()
        if optional:
            p = p.optional()
        return p.consecutive()

    return Case(
        pattern=build,
        records=[(s, 1), (m1, 3), (s, 4), (m2, 5), (m3, 6)],
        expected=[[m1], [m2, m3], [m2], [m3]],
        spec=Spec((Stage("start", a_, max=None, inner=STRICT, optional=optional),)),
    )


@flink_case(F, "testStartWithZeroOrMoreStrict")
def test_nfaitcase_testStartWithZeroOrMoreStrict():
    return _start_strict(True)


@flink_case(F, "testStartWithOneOrMoreStrict")
def test_nfaitcase_testStartWithOneOrMoreStrict():
    return _start_strict(False)


@flink_case(F, "testMultipleTakesVersionCollision")
def test_nfaitcase_testMultipleTakesVersionCollision():
    s = ev(40, "c", 1.0)
    m = [ev(41, "a", float(p)) for p in (2.0, 3.0, 4.0, 5.0, 6.0)]
    end = ev(44, "b", 5.0)
    rows = [
        (1, 2, 3, 4, 5),
        (1, 2, 3, 4, 5),
        (1, 2, 3, 4, 5),
        (1, 2, 3, 4, 5),
        (1, 2, 3, 4),
        (1, 2, 4, 5),
        (1, 2, 3, 4),
        (1, 2, 3, 5),
        (1, 3, 4, 5),
        (1, 3, 4, 5),
        (1, 2, 3, 4),
        (1, 2, 3, 5),
        (1, 2, 4, 5),
        (1, 2, 3),
        (1, 3, 4),
        (1, 4, 5),
        (1, 2, 3),
        (1, 2, 4),
        (1, 2, 5),
        (1, 2),
    ]
    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(c_)
            .followed_by("middle1")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .followed_by("middle2")
            .where(a_)
            .one_or_more()
            .allow_combinations()
            .followed_by("end")
            .where(b_)
        ),
        records=list(zip([s, *m, end], [1, 3, 4, 5, 6, 7, 10], strict=True)),
        expected=[[s, *[m[i - 1] for i in row], end] for row in rows],
        spec=Spec(
            (
                Stage("start", c_),
                Stage("middle1", a_, max=None, inner=ANY),
                Stage("middle2", a_, max=None, inner=ANY),
                Stage("end", b_),
            )
        ),
    )


@flink_case(F, "testNFAResultOrdering")
def test_nfaitcase_testNFAResultOrdering():
    starts = [ev(41, f"a-{i}", float(i + 1)) for i in range(1, 5)]
    ends = [ev(41, f"b-{i}", float(i + 5)) for i in range(1, 4)]

    def check(run: Run) -> None:
        assert len(run.matches) == 1
        match = run.matches[0].events
        assert match["start"] == starts
        assert match["middle"] == ends

    return Case(
        pattern=lambda: (
            P.begin("start")
            .where(lambda s: s["name"].startswith("a-"))
            .times(4)
            .allow_combinations()
            .followed_by_any("middle")
            .where(lambda s: s["name"].startswith("b-"))
            .times(3)
            .consecutive()
        ),
        records=list(zip(starts + ends, [1, 3, 4, 5, 6, 7, 10], strict=True)),
        check=check,
    )


@flink_case(F, "testNFAResultKeyOrdering")
def test_nfaitcase_testNFAResultKeyOrdering():
    names = ["a", "b", "aa", "bb", "ab"]
    es = [ev(41, n, float(i + 2)) for i, n in enumerate(names)]

    def build():
        p = P.begin("a").where(name_is("a"))
        for n in names[1:]:
            p = p.next(n).where(name_is(n))
        return p

    def check(run: Run) -> None:
        assert len(run.matches) == 1
        assert list(run.matches[0].events) == names

    return Case(
        pattern=build,
        records=list(zip(es, [1, 3, 4, 5, 6], strict=True)),
        check=check,
        spec=Spec(
            (
                Stage("a", name_is("a")),
                *tuple(Stage(n, name_is(n), contiguity=STRICT) for n in names[1:]),
            )
        ),
    )
