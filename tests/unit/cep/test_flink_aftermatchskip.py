"""Ports of Flink's AfterMatchSkipITCase (flink-libraries/flink-cep/src/test/java/org/apache/
flink/cep/nfa/AfterMatchSkipITCase.java). Flink feeds these records without timestamps; they
are all fed here at timestamp 0, so event order is arrival order, as in Flink's ``EventId``."""

from __future__ import annotations

import pytest
from flink_harness import Case, P, Skip, ev, feed, flink_case, name_has, name_is
from reference import ANY, SKIP_PAST_LAST, SKIP_TO_FIRST, SKIP_TO_LAST, STRICT, Spec, Stage

F = "AfterMatchSkipITCase"
a_, b_ = name_is("a"), name_is("b")


def at0(*es):
    return [(e, 0) for e in es]


def _six_a():
    return [ev(i, "a", 0.0) for i in range(1, 7)]


@flink_case(F, "testNoSkip")
def test_aftermatchskipitcase_testNoSkip():
    a1, a2, a3, a4, a5, a6 = _six_a()
    return Case(
        pattern=lambda: P.begin("start", Skip.no_skip()).where(a_).times(3),
        records=at0(a1, a2, a3, a4, a5, a6),
        expected=[[a1, a2, a3], [a2, a3, a4], [a3, a4, a5], [a4, a5, a6]],
        spec=Spec((Stage("start", a_, min=3, max=3),)),
    )


@flink_case(F, "testSkipPastLast")
def test_aftermatchskipitcase_testSkipPastLast():
    a1, a2, a3, a4, a5, a6 = _six_a()
    return Case(
        pattern=lambda: P.begin("start", Skip.skip_past_last_event()).where(a_).times(3),
        records=at0(a1, a2, a3, a4, a5, a6),
        expected=[[a1, a2, a3], [a4, a5, a6]],
        spec=Spec((Stage("start", a_, min=3, max=3),), skip=SKIP_PAST_LAST),
    )


def _two_vars(skip_name: str, expected_idx):
    a1, b1, a2, b2 = ev(1, "a", 0.0), ev(2, "b", 0.0), ev(4, "a", 0.0), ev(5, "b", 0.0)
    es = {"a1": a1, "b1": b1, "a2": a2, "b2": b2}
    return Case(
        pattern=lambda: (
            P.begin("start", getattr(Skip, skip_name)()).where(a_).followed_by_any("end").where(b_)
        ),
        records=at0(a1, b1, a2, b2),
        expected=[[es[x] for x in m] for m in expected_idx],
        spec=Spec((Stage("start", a_), Stage("end", b_, ANY)), skip=skip_name),
    )


@flink_case(F, "testNoSkipWithFollowedByAny")
def test_aftermatchskipitcase_testNoSkipWithFollowedByAny():
    return _two_vars("no_skip", [("a1", "b1"), ("a1", "b2"), ("a2", "b2")])


@flink_case(F, "testSkipToNextWithFollowedByAny")
def test_aftermatchskipitcase_testSkipToNextWithFollowedByAny():
    return _two_vars("skip_to_next", [("a1", "b1"), ("a2", "b2")])


def _quantifier_at_end(skip_name: str, n_expected: int):
    a1, b1, b2, b3 = ev(1, "a", 0.0), ev(2, "b", 0.0), ev(4, "b", 0.0), ev(5, "b", 0.0)
    all_matches = [[a1, b1, b2, b3], [a1, b1, b2], [a1, b1]]
    return Case(
        pattern=lambda: (
            P.begin("start", getattr(Skip, skip_name)())
            .where(a_)
            .next("end")
            .where(b_)
            .one_or_more()
        ),
        records=at0(a1, b1, b2, b3),
        expected=all_matches[-n_expected:],
        spec=Spec((Stage("start", a_), Stage("end", b_, STRICT, max=None)), skip=skip_name),
    )


@flink_case(F, "testNoSkipWithQuantifierAtTheEnd")
def test_aftermatchskipitcase_testNoSkipWithQuantifierAtTheEnd():
    return _quantifier_at_end("no_skip", 3)


@flink_case(F, "testSkipToNextWithQuantifierAtTheEnd")
def test_aftermatchskipitcase_testSkipToNextWithQuantifierAtTheEnd():
    return _quantifier_at_end("skip_to_next", 1)


def _ab_times(skip, n: int):
    es = [ev(i, "ab", 0.0) for i in range(1, n + 1)]

    def build():
        return (
            P.begin("start", skip())
            .where(name_has("a"))
            .times(2)
            .next("end")
            .where(name_has("b"))
            .times(2)
        )

    return es, build


@flink_case(F, "testSkipToFirst")
def test_aftermatchskipitcase_testSkipToFirst():
    es, build = _ab_times(lambda: Skip.skip_to_first("end"), 6)
    return Case(
        pattern=build,
        records=at0(*es),
        expected=[es[0:4], es[2:6]],
        spec=Spec(
            (
                Stage("start", name_has("a"), min=2, max=2),
                Stage("end", name_has("b"), STRICT, min=2, max=2),
            ),
            skip=SKIP_TO_FIRST,
            skip_stage="end",
        ),
    )


@flink_case(F, "testSkipToLast")
def test_aftermatchskipitcase_testSkipToLast():
    es, build = _ab_times(lambda: Skip.skip_to_last("end"), 7)
    return Case(
        pattern=build,
        records=at0(*es),
        expected=[es[0:4], es[3:7]],
        spec=Spec(
            (
                Stage("start", name_has("a"), min=2, max=2),
                Stage("end", name_has("b"), STRICT, min=2, max=2),
            ),
            skip=SKIP_TO_LAST,
            skip_stage="end",
        ),
    )


@flink_case(F, "testSkipPastLast2")
def test_aftermatchskipitcase_testSkipPastLast2():
    names = ["a1", "a2", "b1", "b2", "c1", "c2", "d1", "d2"]
    ids = [1, 2, 3, 4, 5, 6, 7, 7]
    es = {n: ev(i, n, 0.0) for n, i in zip(names, ids, strict=True)}
    return Case(
        pattern=lambda: (
            P.begin("a", Skip.skip_past_last_event())
            .where(name_has("a"))
            .followed_by_any("b")
            .where(name_has("b"))
            .followed_by_any("c")
            .where(name_has("c"))
            .followed_by("d")
            .where(name_has("d"))
        ),
        records=at0(*es.values()),
        expected=[[es["a1"], es["b1"], es["c1"], es["d1"]]],
        spec=Spec(
            (
                Stage("a", name_has("a")),
                Stage("b", name_has("b"), ANY),
                Stage("c", name_has("c"), ANY),
                Stage("d", name_has("d")),
            ),
            skip=SKIP_PAST_LAST,
        ),
    )


@flink_case(F, "testSkipPastLast3")
def test_aftermatchskipitcase_testSkipPastLast3():
    a1, c, a2, b2 = ev(1, "a1", 0.0), ev(2, "c", 0.0), ev(3, "a2", 0.0), ev(4, "b2", 0.0)
    return Case(
        pattern=lambda: (
            P.begin("a", Skip.skip_past_last_event())
            .where(name_has("a"))
            .next("b")
            .where(name_has("b"))
        ),
        records=at0(a1, c, a2, b2),
        expected=[[a2, b2]],
        spec=Spec(
            (Stage("a", name_has("a")), Stage("b", name_has("b"), STRICT)), skip=SKIP_PAST_LAST
        ),
    )


def _ab_c():
    return ev(1, "ab1", 0.0), ev(2, "c1", 0.0), ev(3, "ab2", 0.0), ev(4, "c2", 0.0)


@flink_case(F, "testSkipToFirstWithOptionalMatch")
def test_aftermatchskipitcase_testSkipToFirstWithOptionalMatch():
    ab1, c1, ab2, c2 = _ab_c()
    return Case(
        pattern=lambda: (
            P.begin("x", Skip.skip_to_first("b"))
            .where(name_has("x"))
            .one_or_more()
            .optional()
            .next("b")
            .where(name_has("b"))
            .next("c")
            .where(name_has("c"))
        ),
        records=at0(ab1, c1, ab2, c2),
        expected=[[ab1, c1], [ab2, c2]],
        spec=Spec(
            (
                Stage("x", name_has("x"), max=None, optional=True),
                Stage("b", name_has("b"), STRICT),
                Stage("c", name_has("c"), STRICT),
            ),
            skip=SKIP_TO_FIRST,
            skip_stage="b",
        ),
    )


@flink_case(F, "testSkipToFirstAtStartPosition")
def test_aftermatchskipitcase_testSkipToFirstAtStartPosition():
    ab1, c1, ab2, c2 = _ab_c()
    return Case(
        pattern=lambda: (
            P.begin("b", Skip.skip_to_first("b"))
            .where(name_has("b"))
            .next("c")
            .where(name_has("c"))
        ),
        records=at0(ab1, c1, ab2, c2),
        expected=[[ab1, c1], [ab2, c2]],
        spec=Spec(
            (Stage("b", name_has("b")), Stage("c", name_has("c"), STRICT)),
            skip=SKIP_TO_FIRST,
            skip_stage="b",
        ),
    )


def _one_or_more_b(skip_kind: str):
    names = ["a1", "b1", "a2", "b2", "b3", "a3", "b4"]
    ids = [1, 2, 3, 4, 5, 3, 4]
    es = {n: ev(i, n, 0.0) for n, i in zip(names, ids, strict=True)}
    return Case(
        pattern=lambda: (
            P.begin("a", getattr(Skip, skip_kind)("b"))
            .where(name_has("a"))
            .next("b")
            .where(name_has("b"))
            .one_or_more()
            .consecutive()
        ),
        records=at0(*es.values()),
        expected=[[es["a1"], es["b1"]], [es["a2"], es["b2"]], [es["a3"], es["b4"]]],
        spec=Spec(
            (Stage("a", name_has("a")), Stage("b", name_has("b"), STRICT, max=None, inner=STRICT)),
            skip=skip_kind,
            skip_stage="b",
        ),
    )


@flink_case(F, "testSkipToFirstWithOneOrMore")
def test_aftermatchskipitcase_testSkipToFirstWithOneOrMore():
    return _one_or_more_b("skip_to_first")


@flink_case(F, "testSkipToLastWithOneOrMore")
def test_aftermatchskipitcase_testSkipToLastWithOneOrMore():
    return _one_or_more_b("skip_to_last")


def test_aftermatchskipitcase_testSkipToFirstElementOfMatch():
    """Flink: FlinkRuntimeException "Could not skip to first element of a match."."""
    from cep import SkipError

    pattern = P.begin("a", Skip.skip_to_first("a").throw_exception_on_miss()).where(name_has("a"))
    with pytest.raises(SkipError):
        feed(pattern, at0(ev(1, "a1", 0.0)))


def _missed(skip):
    a, c = ev(1, "a", 0.0), ev(4, "c", 0.0)
    pattern = (
        P.begin("a", skip)
        .where(name_has("a"))
        .next("b")
        .where(name_has("b"))
        .one_or_more()
        .optional()
        .consecutive()
        .next("c")
        .where(name_has("c"))
    )
    return a, c, pattern


def test_aftermatchskipitcase_testSkipToFirstNonExistentPosition():
    from cep import SkipError

    a, c, pattern = _missed(Skip.skip_to_first("b").throw_exception_on_miss())
    with pytest.raises(SkipError):
        feed(pattern, at0(a, c))


def test_aftermatchskipitcase_testSkipToLastNonExistentPosition():
    from cep import SkipError

    a, c, pattern = _missed(Skip.skip_to_last("b").throw_exception_on_miss())
    with pytest.raises(SkipError):
        feed(pattern, at0(a, c))


def _missed_case(kind: str):
    a, c = ev(1, "a", 0.0), ev(4, "c", 0.0)
    return Case(
        pattern=lambda: _missed(getattr(Skip, kind)("b"))[2],
        records=at0(a, c),
        expected=[[a, c]],
        spec=Spec(
            (
                Stage("a", name_has("a")),
                Stage("b", name_has("b"), STRICT, max=None, optional=True, inner=STRICT),
                Stage("c", name_has("c"), STRICT),
            ),
            skip=kind,
            skip_stage="b",
        ),
    )


@flink_case(F, "testSkipToFirstNonExistentPositionWithoutException")
def test_aftermatchskipitcase_testSkipToFirstNonExistentPositionWithoutException():
    return _missed_case("skip_to_first")


@flink_case(F, "testSkipToLastNonExistentPositionWithoutException")
def test_aftermatchskipitcase_testSkipToLastNonExistentPositionWithoutException():
    # Flink's test body uses skipToFirst("b") here as well; skip_to_last is the intent.
    return _missed_case("skip_to_last")


def _a3b(skip):
    es = [ev(1, "a1", 0.0), ev(2, "a2", 0.0), ev(3, "a3", 0.0), ev(4, "b1", 0.0)]

    def build():
        return (
            P.begin("a", skip())
            .where(name_has("a"))
            .one_or_more()
            .consecutive()
            .greedy()
            .next("b")
            .where(name_has("b"))
        )

    return es, build


@flink_case(F, "testSkipPastLastWithOneOrMoreAtBeginning")
def test_aftermatchskipitcase_testSkipPastLastWithOneOrMoreAtBeginning():
    (a1, a2, a3, b1), build = _a3b(Skip.skip_past_last_event)
    return Case(pattern=build, records=at0(a1, a2, a3, b1), expected=[[a1, a2, a3, b1]])


@flink_case(F, "testSkipToLastWithOneOrMoreAtBeginning")
def test_aftermatchskipitcase_testSkipToLastWithOneOrMoreAtBeginning():
    (a1, a2, a3, b1), build = _a3b(lambda: Skip.skip_to_last("a"))
    return Case(pattern=build, records=at0(a1, a2, a3, b1), expected=[[a1, a2, a3, b1], [a3, b1]])


@flink_case(F, "testSkipToFirstWithOneOrMoreAtBeginning")
def test_aftermatchskipitcase_testSkipToFirstWithOneOrMoreAtBeginning():
    (a1, a2, a3, b1), build = _a3b(lambda: Skip.skip_to_first("a"))
    return Case(
        pattern=build,
        records=at0(a1, a2, a3, b1),
        expected=[[a1, a2, a3, b1], [a2, a3, b1], [a3, b1]],
    )


@flink_case(F, "testNoSkipWithOneOrMoreAtBeginning")
def test_aftermatchskipitcase_testNoSkipWithOneOrMoreAtBeginning():
    (a1, a2, a3, b1), build = _a3b(Skip.no_skip)
    return Case(
        pattern=build,
        records=at0(a1, a2, a3, b1),
        expected=[[a1, a2, a3, b1], [a2, a3, b1], [a3, b1]],
    )


@flink_case(F, "testSkipToFirstDiscarding")
def test_aftermatchskipitcase_testSkipToFirstDiscarding():
    a, b, c1, c2, c3, d = (
        ev(1, "a", 0.0),
        ev(2, "b", 0.0),
        ev(3, "c1", 0.0),
        ev(4, "c2", 0.0),
        ev(5, "c3", 0.0),
        ev(6, "d", 0.0),
    )
    return Case(
        # Flink: where(name contains "a" || name contains "c"); written with or_ here
        pattern=lambda: (
            P.begin("a or c", Skip.skip_to_first("c*"))
            .where(name_has("a"))
            .or_(name_has("c"))
            .followed_by("b or c")
            .where(name_has("b"))
            .or_(name_has("c"))
            .followed_by("c*")
            .where(name_has("c"))
            .one_or_more()
            .greedy()
            .followed_by("d")
            .where(name_has("d"))
        ),
        records=at0(a, b, c1, c2, c3, d),
        expected=[[a, b, c1, c2, c3, d], [c1, c2, c3, d]],
    )


@flink_case(F, "testSkipBeforeOtherAlreadyCompleted")
def test_aftermatchskipitcase_testSkipBeforeOtherAlreadyCompleted():
    a1, c1, a2 = ev(1, "a1", 0.0), ev(2, "c1", 0.0), ev(3, "a2", 1.0)
    c2, b1, b2 = ev(4, "c2", 0.0), ev(5, "b1", 1.0), ev(6, "b2", 0.0)

    def same_price_as_a(value, ctx):
        return "b" in value["name"] and ctx.events_for("a")[0]["price"] == value["price"]

    return Case(
        pattern=lambda: (
            P.begin("a", Skip.skip_to_first("c"))
            .where(name_has("a"))
            .followed_by("c")
            .where(name_has("c"))
            .followed_by("b")
            .where(same_price_as_a)
        ),
        records=at0(a1, c1, a2, c2, b1, b2),
        expected=[[a1, c1, b2], [a2, c2, b1]],
    )
