"""Rule -> :class:`cep.Pattern`, and the engine's verdict on it as validation issues."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from cep.compiler import compile_pattern
from cep.errors import MalformedPatternError
from cep.pattern import Pattern
from cep.skip import SkipStrategy

from .model import Rule, Stage

#: Makes the engine condition of a stage: ``(stage, "where" | "until") -> callable``.
ConditionMaker = Callable[[Stage, str], Callable[..., bool]]


class StageError(Exception):
    """A MalformedPatternError raised while building one stage (remembers which)."""

    def __init__(self, stage: Stage, cause: MalformedPatternError) -> None:
        super().__init__(str(cause))
        self.stage = stage
        self.cause = cause


def _skip(rule: Rule) -> SkipStrategy:
    kind, target = rule.skip
    if kind == "skip_to_first":
        return SkipStrategy.skip_to_first(target or "")
    if kind == "skip_to_last":
        return SkipStrategy.skip_to_last(target or "")
    return getattr(SkipStrategy, kind)()


def _follow(
    prev: Pattern | None, stage: Stage, make: ConditionMaker, skip: SkipStrategy
) -> Pattern:
    target: Any = _group(stage.stages, make) if stage.stages else stage.name
    if prev is None:
        return Pattern.begin(target, skip)
    if stage.negate:
        return (
            prev.not_next(stage.name)
            if stage.after == "strict"
            else prev.not_followed_by(stage.name)
        )
    if stage.after == "strict":
        return prev.next(target)
    if stage.after == "any":
        return prev.followed_by_any(target)
    return prev.followed_by(target)


def _quantify(p: Pattern, stage: Stage, make: ConditionMaker) -> Pattern:
    if stage.where is not None and not stage.is_group:
        p = p.where(make(stage, "where"), guard=stage.guard)
    if stage.times is not None:
        lo, hi = stage.times
        if hi is None:
            p = p.one_or_more().optional() if lo == 0 else p.times_or_more(lo)
        elif lo == hi:
            p = p.times(lo)
        else:
            p = p.times(lo, hi)
    elif stage.one_or_more:
        p = p.one_or_more()
    if stage.optional:
        p = p.optional()
    if stage.consecutive:
        p = p.consecutive()
    if stage.allow_combinations:
        p = p.allow_combinations()
    if stage.greedy:
        p = p.greedy()
    if stage.until is not None:
        p = p.until(make(stage, "until"))
    return p


def _chain(stages: tuple[Stage, ...], make: ConditionMaker, skip: SkipStrategy) -> Pattern:
    p: Pattern | None = None
    for stage in stages:
        try:
            p = _quantify(_follow(p, stage, make, skip), stage, make)
        except MalformedPatternError as exc:
            raise StageError(stage, exc) from exc
    assert p is not None
    return p


def _group(stages: tuple[Stage, ...] | None, make: ConditionMaker) -> Pattern:
    return _chain(stages or (), make, SkipStrategy.no_skip())


def to_pattern(rule: Rule, make: ConditionMaker) -> Pattern:
    """The engine pattern of ``rule`` with conditions from ``make``."""
    p = _chain(rule.stages, make, _skip(rule))
    if rule.within is not None:
        p = p.within(rule.within)
    return p


def _placeholder(stage: Stage, which: str) -> Callable[..., bool]:
    return lambda event: True


def engine_issues(rule: Rule) -> list[tuple[str, str]]:
    """Build and compile ``rule``'s pattern; the engine's objections as (path, message)."""
    try:
        compile_pattern(to_pattern(rule, _placeholder))
    except StageError as exc:
        return [(exc.stage.path, _engine_message(exc.cause))]
    except MalformedPatternError as exc:
        path = "stages"
        for stage in rule.all_stages():
            if re.search(rf"\b{re.escape(stage.name)}\b", str(exc)):
                path = stage.path
                break
        if "AfterMatchSkipStrategy" in str(exc):
            path = "skip"
        return [(path, _engine_message(exc))]
    return []


def _engine_message(exc: MalformedPatternError) -> str:
    return f"the pattern engine rejects this: {exc} (see docs/rules.md, 'Stages')"
