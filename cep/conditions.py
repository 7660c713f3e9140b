"""Conditions: user callables and the boolean combinations the compiler builds from them.

A user condition with one parameter is *simple* (``cond(event)``); with two it is *iterative*
(``cond(event, ctx)``), where ``ctx`` gives the events already matched in this partial match.
The compiler combines them with ``And``/``Or``/``Not`` and compiles each tree into one Python
function ``fn(event, ctx)``; trees made only of simple leaves also get ``simple(event)`` so the
engine can evaluate them without building a context.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cep.errors import MalformedPatternError

Event = Any
EvalFn = Callable[[Any, Any], bool]
SimpleFn = Callable[[Any], bool]


def _arity(fn: Callable[..., Any]) -> int:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 1
    params = [
        p
        for p in sig.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()) and not params:
        return 1
    return len(params)


@dataclass(frozen=True, slots=True)
class Cond:
    """A condition tree node. ``op`` is ``leaf``, ``true``, ``not``, ``and`` or ``or``."""

    op: str
    fn: Callable[..., bool] | None = None
    iterative: bool = False
    args: tuple[Cond, ...] = ()
    guard: tuple[str, Any] | None = None

    @property
    def is_simple(self) -> bool:
        if self.op == "leaf":
            return not self.iterative
        return all(a.is_simple for a in self.args)


TRUE = Cond("true")


def leaf(fn: Callable[..., bool], guard: tuple[str, Any] | None = None) -> Cond:
    """Wrap a user callable; its arity (1 or 2) decides simple or iterative."""
    if not callable(fn):
        raise MalformedPatternError(f"A condition must be callable, got {fn!r}.")
    n = _arity(fn)
    if n not in (1, 2):
        raise MalformedPatternError(
            f"A condition takes (event) or (event, ctx); {getattr(fn, '__name__', fn)!r} takes {n} parameters."
        )
    if guard is not None and (not isinstance(guard, tuple) or len(guard) != 2):
        raise MalformedPatternError(f"guard must be a (field, value) pair, got {guard!r}.")
    return Cond("leaf", fn=fn, iterative=(n == 2), guard=guard)


def and_(a: Cond | None, b: Cond | None) -> Cond | None:
    if a is None:
        return b
    if b is None:
        return a
    return Cond("and", args=(a, b))


def or_(a: Cond | None, b: Cond) -> Cond:
    if a is None:
        return b
    return Cond("or", args=(a, b))


def not_(a: Cond) -> Cond:
    return Cond("not", args=(a,))


def guards(c: Cond | None) -> set[tuple[str, Any]] | None:
    """The (field, value) pairs of which one must hold for ``c`` to be true; None = unknown."""
    if c is None:
        return None
    if c.op == "leaf":
        return {c.guard} if c.guard is not None else None
    if c.op == "and":
        left, right = guards(c.args[0]), guards(c.args[1])
        if left is None:
            return right
        if right is None:
            return left
        return left if len(left) <= len(right) else right
    if c.op == "or":
        left, right = guards(c.args[0]), guards(c.args[1])
        if left is None or right is None:
            return None
        return left | right
    return None


def compile_simple(c: Cond) -> SimpleFn:
    """Compile a tree made only of simple leaves into ``fn(event) -> bool``."""
    if c.op == "true":
        return lambda e: True
    if c.op == "leaf":
        return c.fn  # type: ignore[return-value]
    if c.op == "not":
        f = compile_simple(c.args[0])
        return lambda e: not f(e)
    f, g = compile_simple(c.args[0]), compile_simple(c.args[1])
    if c.op == "and":
        return lambda e: bool(f(e)) and bool(g(e))
    return lambda e: bool(f(e)) or bool(g(e))


def compile_cond(c: Cond) -> EvalFn:
    """Compile any tree into ``fn(event, ctx) -> bool``."""
    if c.is_simple:
        s = compile_simple(c)
        return lambda e, ctx: s(e)
    if c.op == "leaf":
        return c.fn  # type: ignore[return-value]
    if c.op == "not":
        f = compile_cond(c.args[0])
        return lambda e, ctx: not f(e, ctx)
    f, g = compile_cond(c.args[0]), compile_cond(c.args[1])
    if c.op == "and":
        return lambda e, ctx: bool(f(e, ctx)) and bool(g(e, ctx))
    return lambda e, ctx: bool(f(e, ctx)) or bool(g(e, ctx))
