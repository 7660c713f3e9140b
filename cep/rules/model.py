"""The validated, immutable form of a rule."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .celexpr import CelExpr

#: ``after:`` spelling -> engine contiguity.
AFTER = {"strict": "next", "relaxed": "followed_by", "any": "followed_by_any"}


@dataclass(frozen=True)
class Stage:
    """One stage (or a group of stages when ``stages`` is set)."""

    name: str
    path: str
    after: str | None = None  # strict | relaxed | any; None for a first stage
    where: CelExpr | None = None
    guard: tuple[str, str] | None = None  # split off ``where`` (checked in Python)
    residual: CelExpr | None = None  # what stays CEL of ``where`` after the guard
    negate: bool = False
    times: tuple[int, int | None] | None = None  # (min, max); max None = or more
    one_or_more: bool = False
    optional: bool = False
    greedy: bool = False
    consecutive: bool = False
    allow_combinations: bool = False
    until: CelExpr | None = None
    stages: tuple[Stage, ...] | None = None

    @property
    def is_group(self) -> bool:
        return self.stages is not None

    @property
    def loops(self) -> bool:
        return self.one_or_more or (self.times is not None and self.times[1] != self.times[0])


@dataclass(frozen=True)
class Action:
    """What to do on a match (``emit``) or a timed-out partial match (``on_timeout``)."""

    kind: str  # offer | alert
    topic: str
    data: Any = None  # the raw YAML value
    compiled: Any = None  # same shape, CEL strings replaced by CelExpr


@dataclass(frozen=True)
class ContextSpec:
    """Where a rule's per-key context comes from: entity records keyed like the rule."""

    source: tuple[str, ...]
    key: str
    key_path: tuple[str, ...] | None = None  # the key as a field path of the record
    key_expr: CelExpr | None = None  # else a CEL expression over ``event`` (the record)


@dataclass(frozen=True)
class Rule:
    """A validated rule. ``text`` is the source document (what ``kairos rules apply`` sends)."""

    name: str
    version: int
    source: tuple[str, ...]
    key: str
    stages: tuple[Stage, ...]
    description: str = ""
    key_path: tuple[str, ...] | None = None  # key as a field path, else key_expr is set
    key_expr: CelExpr | None = None
    id: tuple[str, ...] | None = None
    time: tuple[str, ...] | None = None
    max_out_of_orderness: int = 0
    within: int | None = None
    skip: tuple[str, str | None] = ("no_skip", None)
    emit: Action | None = None
    on_timeout: Action | None = None
    context: ContextSpec | None = None
    file: str = "<string>"
    text: str = ""
    document: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def all_stages(self) -> list[Stage]:
        """Every stage, groups and their members, depth first."""
        out: list[Stage] = []

        def walk(stages: tuple[Stage, ...]) -> None:
            for s in stages:
                out.append(s)
                if s.stages:
                    walk(s.stages)

        walk(self.stages)
        return out

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.all_stages() if not s.is_group]
