"""Invalid patterns raise MalformedPatternError with Flink's exact reasons."""

from __future__ import annotations

import pytest

from cep import MalformedPatternError, Pattern, SkipStrategy, compile_pattern


def is_a(e):
    return e["name"] == "a"


def err(fn) -> str:
    with pytest.raises(MalformedPatternError) as info:
        fn()
    return str(info.value)


def test_not_followed_by_last_without_within():
    p = Pattern.begin("a").where(is_a).followed_by("b").where(is_a).not_followed_by("c").where(is_a)
    assert (
        err(lambda: compile_pattern(p))
        == "NotFollowedBy is not supported without windowTime as a last part of a Pattern!"
    )


def test_not_followed_by_last_with_within_compiles():
    p = Pattern.begin("a").where(is_a).not_followed_by("c").where(is_a).within(10)
    assert compile_pattern(p).window_time == 10


def test_optional_twice():
    assert err(lambda: Pattern.begin("a").optional().optional()) == "Optional already applied!"


def test_times_zero_to_n_then_optional():
    assert err(lambda: Pattern.begin("a").times(0, 2).optional()) == "Optional already applied!"


def test_not_pattern_cannot_be_optional():
    assert (
        err(lambda: Pattern.begin("a").not_next("b").optional()) == "NOT pattern cannot be optional"
    )


def test_quantifier_on_not_pattern():
    assert (
        err(lambda: Pattern.begin("a").not_followed_by("b").one_or_more())
        == "Option not applicable to NOT pattern"
    )
    assert err(lambda: Pattern.begin("a").not_next("b").times(2)) == (
        "Option not applicable to NOT pattern"
    )


def test_quantifier_applied_twice():
    msg = err(lambda: Pattern.begin("a").one_or_more().times(2))
    assert msg.startswith("Already applied quantifier to this Pattern. Current quantifier is: ")


def test_skip_to_first_unknown_name():
    p = Pattern.begin("a", skip=SkipStrategy.skip_to_first("zzz")).where(is_a)
    assert err(lambda: compile_pattern(p)) == (
        "The pattern name specified in AfterMatchSkipStrategy can not be found in the given Pattern"
    )


def test_skip_to_last_unknown_name():
    p = Pattern.begin("a", skip=SkipStrategy.skip_to_last("x")).where(is_a).next("b")
    assert "can not be found in the given Pattern" in err(lambda: compile_pattern(p))


def test_duplicate_names():
    p = Pattern.begin("a").followed_by("b").followed_by("a")
    assert err(lambda: compile_pattern(p)) == "Duplicate pattern name: a. Names must be unique."


def test_duplicate_names_inside_group():
    g = Pattern.begin("b").next("a")
    p = Pattern.begin("a").followed_by(g)
    assert err(lambda: compile_pattern(p)) == "Duplicate pattern name: a. Names must be unique."


def test_reserved_end_state_name():
    p = Pattern.begin("$endState$")
    assert err(lambda: compile_pattern(p)) == (
        "Duplicate pattern name: $endState$. Names must be unique."
    )


def test_until_requires_looping():
    assert (
        err(lambda: Pattern.begin("a").until(is_a))
        == "The until condition is only applicable to looping states."
    )


def test_until_twice():
    assert (
        err(lambda: Pattern.begin("a").one_or_more().until(is_a).until(is_a))
        == "Only one until condition can be applied."
    )


def test_consecutive_on_singleton():
    assert err(lambda: Pattern.begin("a").consecutive()).startswith(
        "Consecutive not applicable to "
    )


def test_combinations_on_singleton():
    assert err(lambda: Pattern.begin("a").allow_combinations()).startswith(
        "Combinations not applicable to "
    )


def test_consecutive_and_combinations():
    assert (
        err(lambda: Pattern.begin("a").one_or_more().consecutive().allow_combinations())
        == "You can apply either combinations or consecutive, not both!"
    )
    assert (
        err(lambda: Pattern.begin("a").one_or_more().allow_combinations().consecutive())
        == "You can apply either combinations or consecutive, not both!"
    )


def test_greedy_on_singleton():
    assert (
        err(lambda: Pattern.begin("a").greedy()) == "Option not applicable to singleton quantifier"
    )


def test_greedy_on_group():
    g = Pattern.begin("x").next("y")
    assert (
        err(lambda: Pattern.begin("a").followed_by(g).one_or_more().greedy())
        == "Option not applicable to group pattern"
    )


def test_optional_after_greedy():
    assert (
        err(lambda: Pattern.begin("a").one_or_more().greedy().followed_by("b").optional())
        == "Optional pattern cannot be preceded by greedy pattern"
    )


def test_not_after_optional():
    msg = err(lambda: Pattern.begin("a").optional().not_next("b"))
    assert msg.startswith("Specifying a pattern with an optional path to NOT condition")
    msg = err(lambda: Pattern.begin("a").optional().not_followed_by("b"))
    assert msg.startswith("Specifying a pattern with an optional path to NOT condition")


def test_times_arguments():
    assert err(lambda: Pattern.begin("a").times(0)) == (
        "You should give a positive number greater than 0."
    )
    assert err(lambda: Pattern.begin("a").times(3, 2)) == (
        "The to should be a number greater than or equal to from: 3."
    )
    assert err(lambda: Pattern.begin("a").times(0, 0)) == (
        "The from and to should not be both equal to 0."
    )
    assert err(lambda: Pattern.begin("a").times_or_more(0)) == (
        "You should give a positive number greater than 0."
    )


def test_group_pattern_has_no_where():
    g = Pattern.begin("x")
    assert (
        err(lambda: Pattern.begin(g).where(is_a)) == "GroupPattern does not support where clause."
    )


def test_within_previous_larger_than_whole():
    from cep import WithinType

    p = (
        Pattern.begin("a")
        .followed_by("b")
        .within(100, WithinType.PREVIOUS_AND_CURRENT)
        .followed_by("c")
        .within(50)
    )
    assert err(lambda: compile_pattern(p)) == (
        "The window length between the previous and current event cannot be larger than "
        "the window length between the first and last event for a Pattern."
    )


def test_condition_arity():
    assert "takes (event) or (event, ctx)" in err(
        lambda: Pattern.begin("a").where(lambda a, b, c: True)
    )


def test_condition_not_callable():
    assert "must be callable" in err(lambda: Pattern.begin("a").where(3))  # type: ignore[arg-type]


def test_bad_duration():
    assert "int milliseconds or datetime.timedelta" in err(
        lambda: Pattern.begin("a").within("5s")  # type: ignore[arg-type]
    )


def test_compile_needs_pattern():
    assert "compile_pattern takes a Pattern" in err(lambda: compile_pattern("a"))  # type: ignore[arg-type]


def test_every_error_is_one_type():
    from cep import CepError

    assert issubclass(MalformedPatternError, CepError)
