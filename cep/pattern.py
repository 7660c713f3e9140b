"""The pattern DSL: a snake_case mirror of Flink's ``Pattern`` API.

A pattern is a linked list of stages, each pointing at the one before it, built fluently::

    Pattern.begin("a").where(is_a).followed_by("b").where(is_b).one_or_more().within(60_000)

Every method validates at once and raises :class:`MalformedPatternError` with Flink's message;
the rest of the validation happens in :func:`cep.compiler.compile_pattern`.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable
from typing import Any

from cep import conditions as c
from cep.errors import MalformedPatternError
from cep.skip import SkipStrategy


class ConsumingStrategy(enum.Enum):
    STRICT = "STRICT"
    SKIP_TILL_NEXT = "SKIP_TILL_NEXT"
    SKIP_TILL_ANY = "SKIP_TILL_ANY"
    NOT_FOLLOW = "NOT_FOLLOW"
    NOT_NEXT = "NOT_NEXT"


class WithinType(enum.Enum):
    """What ``within`` measures: first to last event (default) or previous to current event."""

    FIRST_AND_LAST = "FIRST_AND_LAST"
    PREVIOUS_AND_CURRENT = "PREVIOUS_AND_CURRENT"


class QuantifierProperty(enum.Enum):
    SINGLE = "SINGLE"
    LOOPING = "LOOPING"
    TIMES = "TIMES"
    OPTIONAL = "OPTIONAL"
    GREEDY = "GREEDY"


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise MalformedPatternError(message)


class Quantifier:
    """How many events a stage takes and how it skips (Flink's ``Quantifier``)."""

    def __init__(self, strategy: ConsumingStrategy, prop: QuantifierProperty) -> None:
        self.properties: list[QuantifierProperty] = [prop]
        self.consuming_strategy = strategy
        self.inner_consuming_strategy = ConsumingStrategy.SKIP_TILL_NEXT

    def has(self, prop: QuantifierProperty) -> bool:
        return prop in self.properties

    def __repr__(self) -> str:
        props = ", ".join(p.value for p in self.properties)
        return (
            f"Quantifier{{properties=[{props}], consumingStrategy={self.consuming_strategy.value}, "
            f"innerConsumingStrategy={self.inner_consuming_strategy.value}}}"
        )

    def combinations(self) -> None:
        _check(not self.has(QuantifierProperty.SINGLE), f"Combinations not applicable to {self}!")
        _check(
            self.inner_consuming_strategy != ConsumingStrategy.STRICT,
            "You can apply either combinations or consecutive, not both!",
        )
        _check(
            self.inner_consuming_strategy != ConsumingStrategy.SKIP_TILL_ANY,
            "Combinations already applied!",
        )
        self.inner_consuming_strategy = ConsumingStrategy.SKIP_TILL_ANY

    def consecutive(self) -> None:
        _check(
            self.has(QuantifierProperty.LOOPING) or self.has(QuantifierProperty.TIMES),
            f"Consecutive not applicable to {self}!",
        )
        _check(
            self.inner_consuming_strategy != ConsumingStrategy.SKIP_TILL_ANY,
            "You can apply either combinations or consecutive, not both!",
        )
        _check(
            self.inner_consuming_strategy != ConsumingStrategy.STRICT,
            "Consecutive already applied!",
        )
        self.inner_consuming_strategy = ConsumingStrategy.STRICT

    def optional(self) -> None:
        _check(not self.has(QuantifierProperty.OPTIONAL), "Optional already applied!")
        _check(
            self.consuming_strategy
            not in (ConsumingStrategy.NOT_NEXT, ConsumingStrategy.NOT_FOLLOW),
            "NOT pattern cannot be optional",
        )
        self.properties.append(QuantifierProperty.OPTIONAL)

    def greedy(self) -> None:
        _check(
            self.inner_consuming_strategy != ConsumingStrategy.SKIP_TILL_ANY,
            "Option not applicable to FollowedByAny pattern",
        )
        _check(
            not self.has(QuantifierProperty.SINGLE),
            "Option not applicable to singleton quantifier",
        )
        self.properties.append(QuantifierProperty.GREEDY)


def to_millis(duration: int | float | datetime.timedelta) -> int:
    """Milliseconds from an int/float (already ms) or a ``timedelta``."""
    if isinstance(duration, datetime.timedelta):
        return int(duration / datetime.timedelta(milliseconds=1))
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise MalformedPatternError(
            f"A duration is int milliseconds or datetime.timedelta, got {duration!r}."
        )
    return int(duration)


class Pattern:
    """One stage of a pattern and, through ``previous``, all stages before it."""

    def __init__(
        self,
        name: str,
        previous: Pattern | None,
        strategy: ConsumingStrategy,
        skip: SkipStrategy,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise MalformedPatternError(f"A pattern name is a non-empty string, got {name!r}.")
        self.name = name
        self.previous = previous
        self.condition: c.Cond | None = None
        self.until_condition: c.Cond | None = None
        self.quantifier = Quantifier(strategy, QuantifierProperty.SINGLE)
        self.times_range: tuple[int, int] | None = None
        self.window_times: dict[WithinType, int] = {}
        self.skip_strategy = skip

    # -- starting points -------------------------------------------------------------------
    @staticmethod
    def begin(name_or_group: str | Pattern, skip: SkipStrategy | None = None) -> Pattern:
        """First stage; a ``Pattern`` argument starts with a group pattern."""
        skip = skip or SkipStrategy.no_skip()
        if isinstance(name_or_group, Pattern):
            return GroupPattern(None, name_or_group, ConsumingStrategy.SKIP_TILL_NEXT, skip)
        return Pattern(name_or_group, None, ConsumingStrategy.SKIP_TILL_NEXT, skip)

    # -- conditions ------------------------------------------------------------------------
    def where(self, cond: Callable[..., bool], guard: tuple[str, Any] | None = None) -> Pattern:
        """AND a condition to this stage; ``guard=(field, value)``: it can only hold when equal."""
        if cond is None:
            raise MalformedPatternError("The condition cannot be null.")
        self.condition = c.and_(self.condition, c.leaf(cond, guard))
        return self

    def or_(self, cond: Callable[..., bool], guard: tuple[str, Any] | None = None) -> Pattern:
        """OR a condition to this stage."""
        if cond is None:
            raise MalformedPatternError("The condition cannot be null.")
        self.condition = c.or_(self.condition, c.leaf(cond, guard))
        return self

    def subtype(self, cls: type) -> Pattern:
        """AND an ``isinstance(event, cls)`` condition (Flink's ``subtype``)."""
        self.condition = c.and_(self.condition, c.leaf(lambda e: isinstance(e, cls)))
        return self

    def until(self, cond: Callable[..., bool]) -> Pattern:
        """Stop condition of a looping stage: an event satisfying it ends the loop."""
        if cond is None:
            raise MalformedPatternError("The condition cannot be null")
        if self.until_condition is not None:
            raise MalformedPatternError("Only one until condition can be applied.")
        if not self.quantifier.has(QuantifierProperty.LOOPING):
            raise MalformedPatternError("The until condition is only applicable to looping states.")
        self.until_condition = c.leaf(cond)
        return self

    def within(
        self,
        duration: int | float | datetime.timedelta,
        within_type: WithinType = WithinType.FIRST_AND_LAST,
    ) -> Pattern:
        """Time limit: whole pattern (first to last event) or, with PREVIOUS_AND_CURRENT,
        between the previous event and this stage's event."""
        self.window_times[within_type] = to_millis(duration)
        return self

    def get_window_time(self, within_type: WithinType = WithinType.FIRST_AND_LAST) -> int | None:
        return self.window_times.get(within_type)

    # -- following stages ------------------------------------------------------------------
    def _follow(self, name_or_group: str | Pattern, strategy: ConsumingStrategy) -> Pattern:
        if isinstance(name_or_group, Pattern):
            return GroupPattern(self, name_or_group, strategy, self.skip_strategy)
        return Pattern(name_or_group, self, strategy, self.skip_strategy)

    def next(self, name_or_group: str | Pattern) -> Pattern:
        """Strict contiguity: the very next event."""
        return self._follow(name_or_group, ConsumingStrategy.STRICT)

    def followed_by(self, name_or_group: str | Pattern) -> Pattern:
        """Relaxed contiguity: skip non-matching events."""
        return self._follow(name_or_group, ConsumingStrategy.SKIP_TILL_NEXT)

    def followed_by_any(self, name_or_group: str | Pattern) -> Pattern:
        """Non-deterministic relaxed contiguity: also skip matching events."""
        return self._follow(name_or_group, ConsumingStrategy.SKIP_TILL_ANY)

    def _check_not_after_optional(self) -> None:
        if self.quantifier.has(QuantifierProperty.OPTIONAL):
            raise MalformedPatternError(
                "Specifying a pattern with an optional path to NOT condition is not supported yet. "
                "You can simulate such pattern with two independent patterns, one with and the other "
                "without the optional part."
            )

    def not_next(self, name: str) -> Pattern:
        """The next event must not match."""
        self._check_not_after_optional()
        return Pattern(name, self, ConsumingStrategy.NOT_NEXT, self.skip_strategy)

    def not_followed_by(self, name: str) -> Pattern:
        """No matching event may occur before the next stage (or, when last, within the window)."""
        self._check_not_after_optional()
        return Pattern(name, self, ConsumingStrategy.NOT_FOLLOW, self.skip_strategy)

    # -- quantifiers -----------------------------------------------------------------------
    def _check_no_not(self) -> None:
        if self.quantifier.consuming_strategy in (
            ConsumingStrategy.NOT_FOLLOW,
            ConsumingStrategy.NOT_NEXT,
        ):
            raise MalformedPatternError("Option not applicable to NOT pattern")

    def _check_quantifier_not_applied(self) -> None:
        if not self.quantifier.has(QuantifierProperty.SINGLE):
            raise MalformedPatternError(
                f"Already applied quantifier to this Pattern. Current quantifier is: {self.quantifier}"
            )

    def _set_quantifier(self, prop: QuantifierProperty) -> None:
        self.quantifier = Quantifier(self.quantifier.consuming_strategy, prop)

    def optional(self) -> Pattern:
        """The stage may match no event."""
        if self.previous is not None and self.previous.quantifier.has(QuantifierProperty.GREEDY):
            raise MalformedPatternError("Optional pattern cannot be preceded by greedy pattern")
        self.quantifier.optional()
        return self

    def one_or_more(self) -> Pattern:
        return self.times_or_more(1)

    def times_or_more(self, times: int) -> Pattern:
        self._check_no_not()
        self._check_quantifier_not_applied()
        if not isinstance(times, int) or times <= 0:
            raise MalformedPatternError("You should give a positive number greater than 0.")
        self._set_quantifier(QuantifierProperty.LOOPING)
        self.times_range = (times, times)
        return self

    def times(self, times: int, to: int | None = None) -> Pattern:
        """Exactly ``times`` events, or between ``times`` and ``to`` (0 makes it optional)."""
        self._check_no_not()
        self._check_quantifier_not_applied()
        if to is None:
            if not isinstance(times, int) or times <= 0:
                raise MalformedPatternError("You should give a positive number greater than 0.")
            self._set_quantifier(QuantifierProperty.TIMES)
            self.times_range = (times, times)
            return self
        frm = times
        if frm < 0:
            raise MalformedPatternError(
                "The from should be a non-negative number greater than or equal to 0."
            )
        if to < frm:
            raise MalformedPatternError(
                f"The to should be a number greater than or equal to from: {frm}."
            )
        if frm == 0 and to == 0:
            raise MalformedPatternError("The from and to should not be both equal to 0.")
        self._set_quantifier(QuantifierProperty.TIMES)
        if frm == 0:
            self.quantifier.optional()
            frm = 1
        self.times_range = (frm, to)
        return self

    def greedy(self) -> Pattern:
        """Take as many events as possible in the loop before proceeding."""
        self._check_no_not()
        if isinstance(self, GroupPattern):
            raise MalformedPatternError("Option not applicable to group pattern")
        self.quantifier.greedy()
        return self

    def consecutive(self) -> Pattern:
        """Strict contiguity inside a looping/times stage."""
        self.quantifier.consecutive()
        return self

    def allow_combinations(self) -> Pattern:
        """Non-deterministic relaxed contiguity inside a looping/times stage."""
        self.quantifier.combinations()
        return self

    # -- introspection ---------------------------------------------------------------------
    def stages(self) -> list[Pattern]:
        """Top-level stages, first to last."""
        out: list[Pattern] = []
        p: Pattern | None = self
        while p is not None:
            out.append(p)
            p = p.previous
        return out[::-1]

    def __repr__(self) -> str:
        return (
            f"Pattern(name={self.name!r}, quantifier={self.quantifier}, times={self.times_range})"
        )


class GroupPattern(Pattern):
    """A whole pattern used as one stage (``Pattern.begin(p)``, ``.followed_by(p)``, ...)."""

    def __init__(
        self,
        previous: Pattern | None,
        group: Pattern,
        strategy: ConsumingStrategy,
        skip: SkipStrategy,
    ) -> None:
        super().__init__("GroupPattern", previous, strategy, skip)
        self.raw_pattern = group

    def where(self, cond: Callable[..., bool], guard: tuple[str, Any] | None = None) -> Pattern:
        raise MalformedPatternError("GroupPattern does not support where clause.")

    def or_(self, cond: Callable[..., bool], guard: tuple[str, Any] | None = None) -> Pattern:
        raise MalformedPatternError("GroupPattern does not support or clause.")

    def subtype(self, cls: type) -> Pattern:
        raise MalformedPatternError("GroupPattern does not support subtype clause.")
