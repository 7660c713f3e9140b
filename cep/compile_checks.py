"""Pattern checks made before compilation, and the unique internal state names.

Flink's ``NFAStateNameHandler`` and the name and skip-strategy checks of ``NFACompiler``.
"""

from __future__ import annotations

from cep.errors import MalformedPatternError
from cep.pattern import GroupPattern, Pattern
from cep.skip import SkipStrategy

ENDING_STATE_NAME = "$endState$"
STATE_NAME_DELIM = ":"


class _Names:
    """Unique internal state names (Flink's ``NFAStateNameHandler``)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def check_unique(self, name: str) -> None:
        if name in self.used:
            raise MalformedPatternError(f"Duplicate pattern name: {name}. Names must be unique.")
        self.used.add(name)

    def unique(self, base: str) -> str:
        counter, candidate = 0, base
        while candidate in self.used:
            candidate = f"{base}{STATE_NAME_DELIM}{counter}"
            counter += 1
        self.used.add(candidate)
        return candidate


class Checks:
    """Name and skip-strategy checks (part of the compiler)."""

    names: _Names
    current: Pattern
    skip: SkipStrategy

    def _check_skip_strategy(self) -> None:
        name = self.skip.pattern_name
        if name is None:
            return
        p: Pattern = self.current
        while p.previous is not None and p.name != name:
            p = p.previous
        if p.name != name:
            raise MalformedPatternError(
                "The pattern name specified in AfterMatchSkipStrategy can not be found in the given Pattern"
            )

    def _check_name_uniqueness(self) -> None:
        self.names.check_unique(ENDING_STATE_NAME)
        p: Pattern | None = self.current
        while p is not None:
            self._check_one(p)
            p = p.previous
        self.names.used.clear()

    def _check_one(self, p: Pattern) -> None:
        if isinstance(p, GroupPattern):
            q: Pattern | None = p.raw_pattern
            while q is not None:
                self._check_one(q)
                q = q.previous
        else:
            self.names.check_unique(p.name)
