"""The edge conditions the compiler builds from a stage: take, ignore, proceed and NOT.

How a stage's consuming strategy (strict, skip-till-next, skip-till-any), an ``until``
condition, a group's ``until`` and the NOT stages before it turn into the conditions on its
``TAKE``/``IGNORE``/``PROCEED`` edges, as in Flink's ``NFACompiler``.
"""

from __future__ import annotations

from cep import conditions as c
from cep.graph import State
from cep.pattern import ConsumingStrategy as CS
from cep.pattern import GroupPattern, Pattern
from cep.pattern import QuantifierProperty as QP


class Conditions:
    """Edge conditions of the stage being compiled (part of the compiler)."""

    current: Pattern
    current_group: GroupPattern | None
    first_of_loop: dict[int, bool]

    def _not_conditions(self) -> list[tuple[c.Cond, str]]:
        out: list[tuple[c.Cond, str]] = []
        p = self.current
        while p.previous is not None and (
            p.previous.quantifier.has(QP.OPTIONAL)
            or p.previous.quantifier.consuming_strategy == CS.NOT_FOLLOW
        ):
            p = p.previous
            if p.quantifier.consuming_strategy == CS.NOT_FOLLOW:
                out.append((self._take_condition(p), p.name))
        return out

    def _set_first_of_loop(self, value: bool) -> None:
        if isinstance(self.current, GroupPattern):
            self.first_of_loop[id(self.current)] = value

    def _group_first_of_loop(self) -> bool:
        return self.first_of_loop.get(id(self.current_group), True)

    def _head_of_group(self, p: Pattern) -> bool:
        return self.current_group is not None and p.previous is None

    def _is_optional(self, p: Pattern) -> bool:
        return p.quantifier.has(QP.OPTIONAL)

    def _head_of_optional_group(self, p: Pattern) -> bool:
        if not self._head_of_group(p):
            return False
        assert self.current_group is not None
        return self._group_first_of_loop() and self.current_group.quantifier.has(QP.OPTIONAL)

    def _group_until(self) -> c.Cond | None:
        g = self.current_group
        return g.until_condition if g is not None else None

    def _inner_ignore_condition(self, p: Pattern) -> c.Cond | None:
        strategy = p.quantifier.inner_consuming_strategy
        if self._head_of_group(p):
            assert self.current_group is not None
            strategy = self.current_group.quantifier.inner_consuming_strategy
        cond = _ignore_for(strategy, p)
        gu = self._group_until()
        if gu is not None:
            cond = _extend_with_until(cond, gu, False)
        return cond

    def _ignore_condition(self, p: Pattern) -> c.Cond | None:
        strategy = p.quantifier.consuming_strategy
        if self._head_of_group(p):
            assert self.current_group is not None
            q = self.current_group.quantifier
            strategy = (
                q.consuming_strategy if self._group_first_of_loop() else q.inner_consuming_strategy
            )
        cond = _ignore_for(strategy, p)
        gu = self._group_until()
        if gu is not None:
            cond = _extend_with_until(cond, gu, False)
        return cond

    def _take_condition(self, p: Pattern) -> c.Cond:
        cond = p.condition or c.TRUE
        gu = self._group_until()
        if gu is not None:
            extended = _extend_with_until(cond, gu, True)
            assert extended is not None
            cond = extended
        return cond

    def _true(self) -> c.Cond:
        gu = self._group_until()
        if gu is not None:
            extended = _extend_with_until(c.TRUE, gu, True)
            assert extended is not None
            return extended
        return c.TRUE


def _and(a: c.Cond, b: c.Cond) -> c.Cond:
    out = c.and_(a, b)
    assert out is not None
    return out


def _ignore_for(strategy: CS, p: Pattern) -> c.Cond | None:
    if strategy == CS.SKIP_TILL_NEXT:
        return c.not_(p.condition or c.TRUE)
    if strategy == CS.SKIP_TILL_ANY:
        return c.TRUE
    return None


def _extend_with_until(cond: c.Cond | None, until: c.Cond | None, is_take: bool) -> c.Cond | None:
    if until is not None and cond is not None:
        return _and(c.not_(until), cond)
    if until is not None and is_take:
        return c.not_(until)
    return cond


def _update_with_greedy(state: State, take: c.Cond) -> None:
    for t in state.transitions:
        t.cond = _and(t.cond, c.not_(take))
