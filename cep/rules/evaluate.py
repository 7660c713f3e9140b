"""CEL evaluation for one rule, converting only what its expressions read.

Expressions are rewritten to read flat variables (``event.v`` -> ``kairos_ev_v``, see
:func:`cep.rules.celexpr.flatten`); per event, the variables of the fields the rule reads are
gathered once and shared by every condition. Iterative conditions add ``stages`` (only the
stages they name) per call. An evaluation error makes the
condition false and is counted in :attr:`RuleEnv.errors` (with the last message), because one
odd event must not stop a stream.

An action's ``data`` made of plain reads only (``stages.s[0].f``, ``event.f``, ``context.f``,
``key``, quoted strings) is read in Python when CEL would give back the very same values
(:mod:`cep.rules.direct`); anything else, and every failing read, is evaluated in CEL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import cel

from .celexpr import CelExpr, FlatExpr, flatten, project, stage_fields
from .direct import FALLBACK, DirectData
from .model import Rule, Stage

#: Key added to an event stored in the engine when its id comes from the caller.
RESERVED_ID = "_kairos_eid"


def strip(event: dict[str, Any]) -> dict[str, Any]:
    if RESERVED_ID in event:
        return {k: v for k, v in event.items() if k != RESERVED_ID}
    return event


def jsonable(value: Any) -> Any:
    """CEL results as JSON values (timestamps -> RFC 3339, durations -> seconds)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class RuleEnv:
    """The CEL side of one rule: engine conditions and action data."""

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._flat: dict[int, FlatExpr] = {}
        exprs: list[CelExpr] = []
        for s in rule.all_stages():
            exprs.extend(e for e in (s.residual, s.until) if e is not None)
        flats = [self._flatten(e) for e in exprs]
        self.event_vars = tuple(sorted({v for f in flats for v in f.event_vars}))
        self.has_vars = tuple(sorted({v for f in flats for v in f.has_vars}))
        self.context_vars = tuple(sorted({v for f in flats for v in f.context_vars}))
        self.context_has_vars = tuple(sorted({v for f in flats for v in f.context_has_vars}))
        used = set().union(*(f.uses for f in flats)) if flats else set()
        self.uses_event = "event" in used  # the whole event (a use we could not narrow)
        self.uses_context = "context" in used
        self.uses_key = "key" in used
        self.stage_names = rule.stage_names
        self.key: Any = None
        self.context: dict[str, Any] | None = None
        self._event: Any = None
        self._vars: dict[str, Any] = {}
        self.errors = 0
        self.last_error: str | None = None
        self._plans: dict[int, _DataPlan] = {}

    def _flatten(self, expr: CelExpr) -> FlatExpr:
        flat = self._flat.get(id(expr))
        if flat is None:
            flat = self._flat[id(expr)] = flatten(expr)
        return flat

    @property
    def event_fields(self) -> frozenset[str] | None:
        """Event fields converted per event (None: the whole event)."""
        if self.uses_event:
            return None
        return frozenset(f for _, f in self.event_vars) | frozenset(f for _, f in self.has_vars)

    # -- per call -------------------------------------------------------------------------
    def bind(self, key: Any, context: dict[str, Any] | None) -> None:
        """Set the key and context for the events about to be processed."""
        self.key = key
        self.context = context
        self._event = None

    def _variables(self, event: dict[str, Any]) -> dict[str, Any]:
        """The CEL variables of ``event``: built once per event, shared by every condition."""
        if event is self._event:
            return self._vars
        v = {name: event[f] for name, f in self.event_vars if f in event}
        for name, f in self.has_vars:
            v[name] = f in event
        if self.context_vars or self.context_has_vars:
            ctx = self.context or {}
            for name, f in self.context_vars:
                if f in ctx:
                    v[name] = ctx[f]
            for name, f in self.context_has_vars:
                v[name] = f in ctx
        if self.uses_event:
            v["event"] = strip(event)
        if self.uses_context:
            v["context"] = self.context or {}
        if self.uses_key:
            v["key"] = self.key
        self._event = event
        self._vars = v
        return v

    def _fail(self, where: str, exc: Exception) -> bool:
        self.errors += 1
        self.last_error = f"{where}: {type(exc).__name__}: {exc}"
        return False

    # -- engine conditions ----------------------------------------------------------------
    def condition(self, stage: Stage, which: str) -> Callable[..., bool]:
        """The engine condition for ``stage.where`` (guard + residual CEL) or ``stage.until``."""
        expr = stage.residual if which == "where" else stage.until
        guard = stage.guard if which == "where" else None
        where = f"{stage.path}.{which}"
        if expr is None:
            field, value = guard  # type: ignore[misc]
            return lambda event: event.get(field) == value
        flat = self._flatten(expr)
        execute = flat.program.execute
        variables = self._variables
        fail = self._fail
        gf, gv = guard if guard else (None, None)
        if "stages" not in flat.uses:

            def simple(event: dict[str, Any]) -> bool:
                if gf is not None and event.get(gf) != gv:
                    return False
                try:
                    return execute(variables(event)) is True
                except Exception as exc:
                    return fail(where, exc)

            return simple
        names = expr.reads.stage_names
        wanted = list(names) if names is not None else self.stage_names

        def iterative(event: dict[str, Any], ctx: Any) -> bool:
            if gf is not None and event.get(gf) != gv:
                return False
            try:
                v = dict(variables(event))
                v["stages"] = {n: [strip(e) for e in ctx.events_for(n)] for n in wanted}
                return execute(v) is True
            except Exception as exc:
                return fail(where, exc)

        return iterative

    # -- action data ----------------------------------------------------------------------
    def data(
        self,
        compiled: Any,
        stages: dict[str, list[dict[str, Any]]],
        key: Any,
        context: dict[str, Any] | None,
        last: dict[str, Any] | None,
    ) -> tuple[Any, list[str]]:
        """Evaluate an action's ``data`` tree; failed expressions give null and an error."""
        if compiled is None:
            return None, []
        plan = self._plans.get(id(compiled))
        if plan is None or plan.compiled is not compiled:
            plan = self._plans[id(compiled)] = _DataPlan(compiled, self.stage_names)
        if plan.direct is not None:
            # plain reads (stages.s[0].f, event.f, context.f, key, 'text') whose values CEL
            # would give back unchanged: read in Python (see cep.rules.direct)
            value = plan.direct.evaluate(stages, key, context, last)
            if value is not FALLBACK:
                return value, []
        # only what the expressions read is converted to CEL (the costly part): the stages
        # they name, projected to the fields read as ``stages.s[i].f``, and the variables used
        variables: dict[str, Any] = {}
        if plan.stages is not None:
            variables["stages"] = {
                n: [project(e, fields, RESERVED_ID) for e in stages.get(n, ())]
                for n, fields in plan.stages
            }
        if plan.key:
            variables["key"] = key
        if plan.context is not False:
            ctx_all = context or {}
            variables["context"] = (
                ctx_all if plan.context is None else project(ctx_all, plan.context, "")
            )
        if plan.event is not False:
            variables["event"] = project(last, plan.event, RESERVED_ID) if last is not None else {}
        ctx = cel.Context(variables)
        errors: list[str] = []

        def walk(node: Any, path: str) -> Any:
            if isinstance(node, CelExpr):
                try:
                    return jsonable(node.program.execute(ctx))
                except Exception as exc:
                    errors.append(f"{path}: {type(exc).__name__}: {exc}")
                    return None
            if isinstance(node, dict):
                return {k: walk(v, f"{path}.{k}") for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v, f"{path}[{i}]") for i, v in enumerate(node)]
            return node

        return walk(compiled, "data"), errors


class _DataPlan:
    """What the expressions of one ``data`` tree read, so :meth:`RuleEnv.data` converts only
    that. ``stages``: ``(stage, fields or None for whole events)`` pairs, None when no
    expression reads ``stages``; ``context`` / ``event``: the fields read (None: all of it,
    False: not read); ``key``: whether ``key`` is read; ``direct``: the tree evaluated in
    Python when every expression is a plain read (:mod:`cep.rules.direct`), else None."""

    __slots__ = ("compiled", "context", "direct", "event", "key", "stages")

    def __init__(self, compiled: Any, stage_names: list[str]) -> None:
        self.compiled = compiled
        exprs: list[CelExpr] = []
        _collect(compiled, exprs)
        used: set[str] = set()
        bound: set[str] = set()
        for e in exprs:
            used |= e.reads.variables
            bound |= e.reads.bound
        self.key = "key" in used
        self.context = self._fields(exprs, "context", used, bound)
        self.event = self._fields(exprs, "event", used, bound)
        self.stages: list[tuple[str, frozenset[str] | None]] | None = None
        if "stages" in used:
            per: dict[str, frozenset[str] | None] | None = {}
            if "stages" in bound:
                per = None
            else:
                for e in exprs:
                    if "stages" not in e.reads.variables:
                        continue
                    got = stage_fields(e.source)
                    if got is None:
                        per = None
                        break
                    for n, f in got.items():
                        had = per.get(n, frozenset())
                        per[n] = None if f is None or had is None else had | (f - _RESERVED)
            if per is None:
                self.stages = [(n, None) for n in stage_names]
            else:
                self.stages = [(n, per[n]) for n in stage_names if n in per]
        self.direct = DirectData.build(
            compiled, stage_names, _RESERVED, self.stages, self.context, self.event, self.key
        )

    @staticmethod
    def _fields(exprs: list[CelExpr], var: str, used: set[str], bound: set[str]) -> Any:
        if var not in used:
            return False
        if var in bound:
            return None
        fields: set[str] = set()
        for e in exprs:
            if var not in e.reads.variables:
                continue
            got = e.reads.event_fields if var == "event" else e.reads.context_fields
            if got is None:
                return None
            fields |= got
        return frozenset(fields) - _RESERVED


_RESERVED = frozenset({RESERVED_ID})  # never readable: the engine's copy of an event id


def _collect(node: Any, out: list[CelExpr]) -> None:
    if isinstance(node, CelExpr):
        out.append(node)
    elif isinstance(node, dict):
        for v in node.values():
            _collect(v, out)
    elif isinstance(node, list):
        for v in node:
            _collect(v, out)
