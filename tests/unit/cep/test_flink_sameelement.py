"""Ports of Flink's SameElementITCase (flink-libraries/flink-cep/src/test/java/org/apache/flink/
cep/nfa/SameElementITCase.java): events that are equal and share a timestamp, fed several times,
are still distinct events."""

from __future__ import annotations

from flink_harness import Case, P, ev, flink_case, name_is
from reference import Spec, Stage

F = "SameElementITCase"
a_, b_, c_, d_ = (name_is(n) for n in "abcd")


@flink_case(F, "testEagerZeroOrMoreSameElement")
def test_sameelementitcase_testEagerZeroOrMoreSameElement():
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
        records=[
            (s, 1),
            (m1, 3),
            (m1, 3),
            (m1, 3),
            (m2, 4),
            (ev(50, "d", 6.0), 5),
            (m3, 6),
            (m3, 6),
            (e1, 7),
        ],
        expected=[
            [s, m1, m1, m1, m2, m3, m3, e1],
            [s, m1, m1, m1, m2, m3, e1],
            [s, m1, m1, m1, m2, e1],
            [s, m1, m1, m1, e1],
            [s, m1, m1, e1],
            [s, m1, e1],
            [s, e1],
        ],
        spec=Spec(
            (Stage("start", c_), Stage("middle", a_, max=None, optional=True), Stage("end1", b_))
        ),
    )


@flink_case(F, "testClearingBuffer")
def test_sameelementitcase_testClearingBuffer():
    a1, b1, c1, d = ev(40, "a", 1.0), ev(41, "b", 2.0), ev(41, "c", 2.0), ev(41, "d", 2.0)
    return Case(
        pattern=lambda: (
            P.begin("a")
            .where(a_)
            .followed_by("b")
            .where(b_)
            .followed_by("c")
            .where(c_)
            .followed_by("d")
            .where(d_)
        ),
        records=[(a1, 1), (b1, 2), (c1, 2), (d, 2)],
        expected=[[a1, b1, c1, d]],
        spec=Spec((Stage("a", a_), Stage("b", b_), Stage("c", c_), Stage("d", d_))),
    )


@flink_case(F, "testClearingBufferWithUntilAtTheEnd")
def test_sameelementitcase_testClearingBufferWithUntilAtTheEnd():
    a1 = ev(40, "a", 1.0)
    d1, d2, d3, d4 = (ev(41, "d", 2.0) for _ in range(4))
    return Case(
        pattern=lambda: (
            P.begin("a")
            .where(a_)
            .followed_by("d")
            .where(d_)
            .one_or_more()
            .until(lambda value, ctx: len(ctx.events_for("d")) == 3)
        ),
        records=[(a1, 1), (d1, 2), (d2, 2), (d3, 2), (d4, 4)],
        expected=[[a1, d1, d2, d3], [a1, d1, d2], [a1, d1]],
    )
