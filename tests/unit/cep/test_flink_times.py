"""Ports of Flink's TimesOrMoreITCase and TimesRangeITCase (flink-libraries/flink-cep/src/test/
java/org/apache/flink/cep/nfa/TimesOrMoreITCase.java, TimesRangeITCase.java). ``times(0, n)``
is, as in Flink, an optional ``times(1, n)``."""

from __future__ import annotations

from flink_harness import Case, P, ev, flink_case, name_is
from reference import ANY, RELAXED, STRICT, Spec, Stage

TM = "TimesOrMoreITCase"
TR = "TimesRangeITCase"
a_, b_, c_ = name_is("a"), name_is("b"), name_is("c")


def cd():
    """ConsecutiveData: start, middle1..3, end."""
    return ev(40, "c", 1.0), ev(41, "a", 2.0), ev(42, "a", 3.0), ev(43, "a", 4.0), ev(44, "b", 5.0)


def _f():
    return ev(23, "f", 1.0)


def _gapped():
    s, m1, m2, m3, e = cd()
    return (s, m1, m2, m3, e), [(s, 1), (_f(), 2), (m1, 3), (_f(), 4), (m2, 5), (m3, 6), (e, 7)]


def _plain():
    s, m1, m2, m3, e = cd()
    return (s, m1, m2, m3, e), [(s, 1), (m1, 2), (m2, 3), (m3, 4), (e, 6)]


def _cab(follow: str, mods: list):
    def build():
        p = getattr(P.begin("start").where(c_), follow)("middle").where(a_)
        for name, *args in mods:
            p = getattr(p, name)(*args)
        return p.followed_by("end1").where(b_)

    return build


def _spec(cont: str, **middle) -> Spec:
    return Spec(
        (Stage("start", c_), Stage("middle", a_, contiguity=cont, **middle), Stage("end1", b_))
    )


def _case(follow, mods, records_fn, expected_idx, spec):
    es, records = records_fn()
    return Case(
        pattern=_cab(follow, mods),
        records=records,
        expected=[[es[i] for i in m] for m in expected_idx],
        spec=spec,
    )


@flink_case(TM, "testTimesOrMore")
def test_timesormoreitcase_testTimesOrMore():
    return _case(
        "followed_by",
        [("times_or_more", 2), ("allow_combinations",)],
        _plain,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4)],
        _spec(RELAXED, min=2, max=None, inner=ANY),
    )


@flink_case(TM, "testTimesOrMoreNonStrict")
def test_timesormoreitcase_testTimesOrMoreNonStrict():
    return _case(
        "followed_by_any",
        [("times_or_more", 2), ("allow_combinations",)],
        _gapped,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4), (0, 2, 3, 4)],
        _spec(ANY, min=2, max=None, inner=ANY),
    )


@flink_case(TM, "testTimesOrMoreStrict")
def test_timesormoreitcase_testTimesOrMoreStrict():
    # Flink's test body uses times(2).consecutive() under this name
    return _case(
        "followed_by_any",
        [("times", 2), ("consecutive",)],
        _gapped,
        [(0, 2, 3, 4)],
        _spec(ANY, min=2, max=2, inner=STRICT),
    )


@flink_case(TM, "testTimesOrMoreStrictOptional")
def test_timesormoreitcase_testTimesOrMoreStrictOptional():
    return _case(
        "followed_by_any",
        [("times_or_more", 2), ("consecutive",), ("optional",)],
        _gapped,
        [(0, 2, 3, 4), (0, 4)],
        _spec(ANY, min=2, max=None, inner=STRICT, optional=True),
    )


@flink_case(TR, "testTimesRange")
def test_timesrangeitcase_testTimesRange():
    return _case(
        "next",
        [("times", 1, 3), ("allow_combinations",)],
        _plain,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4), (0, 1, 4)],
        _spec(STRICT, min=1, max=3, inner=ANY),
    )


@flink_case(TR, "testTimesRangeFromZero")
def test_timesrangeitcase_testTimesRangeFromZero():
    return _case(
        "next",
        [("times", 0, 2), ("allow_combinations",)],
        _plain,
        [(0, 1, 2, 4), (0, 1, 3, 4), (0, 1, 4), (0, 4)],
        _spec(STRICT, min=1, max=2, inner=ANY, optional=True),
    )


@flink_case(TR, "testTimesRangeNonStrict")
def test_timesrangeitcase_testTimesRangeNonStrict():
    return _case(
        "followed_by_any",
        [("times", 1, 3), ("allow_combinations",)],
        _gapped,
        [
            (0, 1, 2, 3, 4),
            (0, 1, 2, 4),
            (0, 1, 3, 4),
            (0, 2, 3, 4),
            (0, 1, 4),
            (0, 2, 4),
            (0, 3, 4),
        ],
        _spec(ANY, min=1, max=3, inner=ANY),
    )


@flink_case(TR, "testTimesRangeStrict")
def test_timesrangeitcase_testTimesRangeStrict():
    return _case(
        "followed_by_any",
        [("times", 0, 3), ("consecutive",)],
        _gapped,
        [(0, 2, 3, 4), (0, 1, 4), (0, 2, 4), (0, 3, 4), (0, 4)],
        _spec(ANY, min=1, max=3, inner=STRICT, optional=True),
    )


@flink_case(TR, "testTimesRangeStrictOptional")
def test_timesrangeitcase_testTimesRangeStrictOptional():
    return _case(
        "followed_by_any",
        [("times", 1, 3), ("consecutive",), ("optional",)],
        _gapped,
        [(0, 2, 3, 4), (0, 1, 4), (0, 2, 4), (0, 3, 4), (0, 4)],
        _spec(ANY, min=1, max=3, inner=STRICT, optional=True),
    )


@flink_case(TR, "testTimesRangeStrictOptional1")
def test_timesrangeitcase_testTimesRangeStrictOptional1():
    s, m1, m2, m3, e = cd()
    return Case(
        pattern=_cab("next", [("times", 1, 3), ("consecutive",), ("optional",)]),
        records=[(s, 1), (m1, 3), (m2, 5), (m3, 6), (e, 7)],
        expected=[[s, m1, m2, m3, e], [s, m1, m2, e], [s, m1, e], [s, e]],
        spec=_spec(STRICT, min=1, max=3, inner=STRICT, optional=True),
    )


@flink_case(TR, "testTimesRangeNonStrictOptional1")
def test_timesrangeitcase_testTimesRangeNonStrictOptional1():
    s, _, _, _, e = cd()
    return Case(
        pattern=_cab("followed_by", [("times", 1, 3), ("optional",)]),
        records=[(s, 1), (_f(), 2), (e, 7)],
        expected=[[s, e]],
        spec=_spec(RELAXED, min=1, max=3, optional=True),
    )


def _spaced():
    """start, middle1..3, end at 1, 2, 4, 6, 7."""
    s, m1, m2, m3, e = cd()
    return (s, m1, m2, m3, e), [(s, 1), (m1, 2), (m2, 4), (m3, 6), (e, 7)]


def _with_next_gaps():
    """start, middle1, f, middle2, f, middle3, end at 1..7."""
    s, m1, m2, m3, e = cd()
    return (s, m1, m2, m3, e), [(s, 1), (m1, 2), (_f(), 3), (m2, 4), (_f(), 5), (m3, 6), (e, 7)]


def _strict_opt2():
    s, m1, m2, m3, e = cd()
    return (s, m1, m2, m3, e), [(s, 1), (m1, 3), (m2, 5), (m3, 6), (e, 7)]


def _only_f():
    s, m1, m2, m3, e = cd()
    return (s, m1, m2, m3, e), [(s, 1), (_f(), 2), (e, 7)]


@flink_case(TR, "testTimesRangeNonStrictOptional2")
def test_timesrangeitcase_testTimesRangeNonStrictOptional2():
    return _case(
        "followed_by_any",
        [("times", 2, 3), ("allow_combinations",), ("optional",)],
        _gapped,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4), (0, 2, 3, 4), (0, 4)],
        _spec(ANY, min=2, max=3, inner=ANY, optional=True),
    )


@flink_case(TR, "testTimesRangeNonStrictOptional3")
def test_timesrangeitcase_testTimesRangeNonStrictOptional3():
    return _case(
        "followed_by_any",
        [("times", 2, 3), ("optional",)],
        _gapped,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 2, 3, 4), (0, 4)],
        _spec(ANY, min=2, max=3, optional=True),
    )


@flink_case(TR, "testTimesRangeNonStrictWithNext")
def test_timesrangeitcase_testTimesRangeNonStrictWithNext():
    return _case(
        "next",
        [("times", 2, 3), ("allow_combinations",)],
        _with_next_gaps,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4)],
        _spec(STRICT, min=2, max=3, inner=ANY),
    )


@flink_case(TR, "testTimesRangeNotStrictWithFollowedBy")
def test_timesrangeitcase_testTimesRangeNotStrictWithFollowedBy():
    return _case(
        "followed_by",
        [("times", 2, 3)],
        _spaced,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4)],
        _spec(RELAXED, min=2, max=3),
    )


@flink_case(TR, "testTimesRangeNotStrictWithFollowedByAny")
def test_timesrangeitcase_testTimesRangeNotStrictWithFollowedByAny():
    return _case(
        "followed_by_any",
        [("times", 2, 3), ("allow_combinations",)],
        _spaced,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 2, 3, 4), (0, 1, 3, 4)],
        _spec(ANY, min=2, max=3, inner=ANY),
    )


@flink_case(TM, "testTimesOrMoreStrictOptional2")
def test_timesormoreitcase_testTimesOrMoreStrictOptional2():
    return _case(
        "next",
        [("times_or_more", 2), ("consecutive",), ("optional",)],
        _strict_opt2,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 4)],
        _spec(STRICT, min=2, max=None, inner=STRICT, optional=True),
    )


@flink_case(TM, "testTimesOrMoreNonStrictOptional")
def test_timesormoreitcase_testTimesOrMoreNonStrictOptional():
    return _case(
        "followed_by",
        [("times_or_more", 2), ("optional",)],
        _only_f,
        [(0, 4)],
        _spec(RELAXED, min=2, max=None, optional=True),
    )


@flink_case(TM, "testTimesOrMoreNonStrictOptional2")
def test_timesormoreitcase_testTimesOrMoreNonStrictOptional2():
    return _case(
        "followed_by_any",
        [("times_or_more", 2), ("allow_combinations",), ("optional",)],
        _gapped,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 1, 3, 4), (0, 2, 3, 4), (0, 4)],
        _spec(ANY, min=2, max=None, inner=ANY, optional=True),
    )


@flink_case(TM, "testTimesOrMoreNonStrictOptional3")
def test_timesormoreitcase_testTimesOrMoreNonStrictOptional3():
    return _case(
        "followed_by_any",
        [("times_or_more", 2), ("optional",)],
        _gapped,
        [(0, 1, 2, 3, 4), (0, 1, 2, 4), (0, 2, 3, 4), (0, 4)],
        _spec(ANY, min=2, max=None, optional=True),
    )
