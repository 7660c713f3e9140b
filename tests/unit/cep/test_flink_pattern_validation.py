"""Ports of Flink's pattern validation tests: PatternTest (flink-libraries/flink-cep/src/test/
java/org/apache/flink/cep/pattern/PatternTest.java) and NFACompilerTest
(.../cep/nfa/compiler/NFACompilerTest.java). Each builds an invalid pattern and expects
``MalformedPatternException`` (here :class:`cep.MalformedPatternError`)."""

from __future__ import annotations

import pytest
from flink_harness import P


def true(_e):
    return True


def _err():
    from cep import MalformedPatternError

    return MalformedPatternError


def _compile(p):
    from cep import compile_pattern

    return compile_pattern(p)


def test_patterntest_testNotNextCannotBeTimes():
    with pytest.raises(_err()):
        P.begin("start").where(true).not_next("not").where(true).times(3)


def test_patterntest_testNotNextCannotBeOptional():
    with pytest.raises(_err()):
        P.begin("start").where(true).not_next("not").where(true).optional()


def test_patterntest_testNotFollowedCannotBeOneOrMore():
    with pytest.raises(_err()):
        P.begin("start").where(true).not_followed_by("not").where(true).one_or_more()


def test_patterntest_testNotFollowedCannotBeTimes():
    with pytest.raises(_err()):
        P.begin("start").where(true).not_followed_by("not").where(true).times(3)


def test_patterntest_testNotFollowedCannotBeOptional():
    with pytest.raises(_err()):
        P.begin("start").where(true).not_followed_by("not").where(true).optional()


def test_patterntest_testUntilCannotBeAppliedToTimes():
    with pytest.raises(_err()):
        P.begin("start").where(true).times(1).until(true)


def test_patterntest_testUntilCannotBeAppliedToSingleton():
    with pytest.raises(_err()):
        P.begin("start").where(true).until(true)


def test_patterntest_testUntilCannotBeAppliedTwice():
    with pytest.raises(_err()):
        P.begin("start").where(true).one_or_more().until(true).until(true)


def test_nfacompilertest_testNFACompilerUniquePatternName():
    p = P.begin("start").where(true).followed_by("middle").where(true).followed_by("start")
    with pytest.raises(_err(), match=r"Duplicate pattern name: start\. Names must be unique\."):
        _compile(p.where(true))


def test_nfacompilertest_testNFACompilerPatternEndsWithNotFollowedBy():
    p = P.begin("start").where(true).followed_by("middle").where(true).not_followed_by("end")
    with pytest.raises(
        _err(), match="NotFollowedBy is not supported without windowTime as a last part"
    ):
        _compile(p.where(true))


def test_not_after_optional_is_rejected():
    """Flink Pattern.notNext/notFollowedBy: a NOT pattern cannot follow an optional one."""
    with pytest.raises(_err(), match="optional path to NOT condition"):
        P.begin("start").where(true).optional().not_followed_by("not")


def test_harness_run_reports_event_ids_in_stage_order():
    """The harness itself: ``run`` gives each match's event ids, first stage first."""
    from flink_harness import ev, name_is, run

    p = P.begin("x").where(name_is("a")).followed_by("y").where(name_is("b"))
    assert run(p, [(ev(7, "a", 1.0), 1), (ev(3, "c", 1.0), 2), (ev(5, "b", 1.0), 3)]) == [[7, 5]]
