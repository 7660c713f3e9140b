"""Turn a schema-valid document into a :class:`Rule`, checking what a schema cannot."""

from __future__ import annotations

import re
from typing import Any

from .celexpr import KEY_VARIABLES, CelCompileError, CelExpr, compile_cel, split_guard
from .durations import parse_duration
from .errors import RuleIssue
from .model import Action, ContextSpec, Rule, Stage
from .source import Document, Path

FIELD_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_LOOP_ONLY = ("greedy", "consecutive", "allow_combinations")
_NOT_WITH_NEGATE = (
    "times",
    "one_or_more",
    "optional",
    "greedy",
    "consecutive",
    "allow_combinations",
    "until",
)


_COND = "event.type == 'Booking' && event.amount > 100"
_DATA = "stages.delayed[0].flight or 'fixed text'"
_KEY = "event.customer.id + ':' + event.region"


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.issues: list[RuleIssue] = []
        self.seen: dict[str, str] = {}  # stage name -> path
        self.order: list[str] = []  # leaf stage names in order

    def err(self, path: Path, message: str, *, key: bool = False) -> None:
        self.issues.append(self.doc.issue(path, message, key=key))

    def cel(
        self, path: Path, src: str, allowed: frozenset[str] | None = None, example: str = _COND
    ) -> CelExpr | None:
        try:
            return compile_cel(src) if allowed is None else compile_cel(src, allowed)
        except CelCompileError as exc:
            message = exc.message
            if message.startswith("CEL syntax error"):
                message += f"; write a complete CEL expression, e.g. {example}"
            issue = self.doc.issue(path, message)
            if exc.line is not None and exc.column is not None:
                pos = self.doc.expr_position(path, exc.line, exc.column)
                if pos:
                    issue = RuleIssue(issue.file, issue.path, issue.message, pos[0], pos[1])
            self.issues.append(issue)
            return None

    # -- stages ---------------------------------------------------------------------------
    def stages(self, items: list[dict[str, Any]], path: Path) -> tuple[Stage, ...]:
        out = []
        for i, raw in enumerate(items):
            out.append(self.stage(raw, (*path, i), first=i == 0))
        return tuple(out)

    def stage(self, raw: dict[str, Any], path: Path, *, first: bool) -> Stage:
        name = raw["name"]
        if name in self.seen:
            self.err(
                (*path, "name"),
                f"stage name '{name}' is already used by {self.seen[name]}; "
                "give every stage a unique name",
            )
        else:
            self.seen[name] = _fmt(path)
        if first and "after" in raw:
            self.err(
                (*path, "after"),
                "the first stage of a list has no previous stage; remove 'after' "
                "(a group's contiguity is set on the group)",
                key=True,
            )
        if first and raw.get("negate"):
            self.err(
                (*path, "negate"),
                "a pattern cannot begin with a negated stage; put at least one stage before it",
                key=True,
            )
        group = "stages" in raw
        if group:
            for k in ("where", "until", "negate"):
                if k in raw:
                    self.err(
                        (*path, k),
                        f"'{k}' is not allowed on a group; put it on a stage inside "
                        f"{_fmt((*path, 'stages'))}",
                        key=True,
                    )
        elif raw.get("negate"):
            for k in _NOT_WITH_NEGATE:
                if k in raw and raw[k] not in (False, None):
                    self.err(
                        (*path, k),
                        f"'{k}' cannot be used with negate: true; "
                        "a negated stage matches one event or none",
                        key=True,
                    )
            if raw.get("after") == "any":
                self.err(
                    (*path, "after"),
                    "negate works with after: strict (not_next) or "
                    "relaxed (not_followed_by), not any",
                )
        if "times" in raw and raw.get("one_or_more"):
            self.err(
                (*path, "one_or_more"),
                "use either times or one_or_more, not both (times: {min: 1} is one or more)",
                key=True,
            )
        times = None
        if "times" in raw:
            t = raw["times"]
            if isinstance(t, int):
                times = (t, t)
            else:
                lo, hi = t["min"], t.get("max")
                if hi is not None and hi < lo:
                    self.err(
                        (*path, "times", "max"), f"max ({hi}) is below min ({lo}); make max >= {lo}"
                    )
                times = (lo, hi)
        quantified = bool(raw.get("one_or_more")) or times is not None
        for k in _LOOP_ONLY:
            if raw.get(k) and not quantified and not raw.get("negate"):
                self.err(
                    (*path, k),
                    f"'{k}' applies to a repeated stage; add one_or_more: true or times: N",
                    key=True,
                )
        if raw.get("consecutive") and raw.get("allow_combinations"):
            self.err(
                (*path, "allow_combinations"),
                "consecutive and allow_combinations exclude each other; keep one",
                key=True,
            )
        if "until" in raw and not (raw.get("one_or_more") or (times and times[1] is None)):
            self.err(
                (*path, "until"),
                "until stops a stage that repeats without bound; use it with "
                "one_or_more: true or times: {min: N}",
                key=True,
            )
        if group:
            members = self.stages(raw["stages"], (*path, "stages"))
            return Stage(
                name=name,
                path=_fmt(path),
                after=raw.get("after") if not first else None,
                times=times,
                one_or_more=bool(raw.get("one_or_more")),
                optional=bool(raw.get("optional")),
                greedy=bool(raw.get("greedy")),
                consecutive=bool(raw.get("consecutive")),
                allow_combinations=bool(raw.get("allow_combinations")),
                stages=members,
            )
        self.order.append(name)
        where = guard = residual = until = None
        if "where" in raw:
            where = self.cel((*path, "where"), raw["where"])
            if where is not None:
                guard, rest = split_guard(where.source)
                try:
                    residual = (
                        where if rest == where.source else (compile_cel(rest) if rest else None)
                    )
                except CelCompileError:  # cannot happen for a valid split; keep the whole condition
                    guard, residual = None, where
        if "until" in raw:
            until = self.cel((*path, "until"), raw["until"])
        return Stage(
            name=name,
            path=_fmt(path),
            after=(raw.get("after") or "relaxed") if not first else None,
            where=where,
            guard=guard,
            residual=residual,
            negate=bool(raw.get("negate")),
            times=times,
            one_or_more=bool(raw.get("one_or_more")),
            optional=bool(raw.get("optional")),
            greedy=bool(raw.get("greedy")),
            consecutive=bool(raw.get("consecutive")),
            allow_combinations=bool(raw.get("allow_combinations")),
            until=until,
        )

    def check_stage_refs(self, expr: CelExpr | None, path: Path, upto: str | None) -> None:
        """``stages.X`` must name a stage; in a condition, X must not come after it."""
        if expr is None or not expr.reads.stage_names:
            return
        for ref in sorted(expr.reads.stage_names):
            if ref not in self.order:
                known = ", ".join(self.order)
                self.err(path, f"stages.{ref} names no stage; stages are: {known}")
            elif upto is not None and self.order.index(ref) > self.order.index(upto):
                self.err(
                    path,
                    f"stages.{ref} comes after stage '{upto}', so it is always empty "
                    f"here; refer to '{upto}' or an earlier stage",
                )

    def key(self, text: str, path: Path) -> tuple[tuple[str, ...] | None, CelExpr | None]:
        """A key: a field path (an ``event.`` prefix allowed) or a CEL expression over ``event``."""
        if FIELD_PATH_RE.match(text):
            parts = tuple(text.split("."))
            return (parts[1:] if parts[0] == "event" and len(parts) > 1 else parts), None
        return None, self.cel(path, text, KEY_VARIABLES, example=_KEY)

    # -- actions --------------------------------------------------------------------------
    def action(self, raw: dict[str, Any], path: Path) -> Action:
        compiled = self.data(raw.get("data"), (*path, "data"))
        return Action(raw["kind"], raw["topic"], raw.get("data"), compiled)

    def data(self, value: Any, path: Path) -> Any:
        if isinstance(value, str):
            expr = self.cel(path, value, example=_DATA)
            self.check_stage_refs(expr, path, None)
            return expr
        if isinstance(value, dict):
            return {k: self.data(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.data(v, (*path, i)) for i, v in enumerate(value)]
        return value


def _fmt(path: Path) -> str:
    from .source import format_path

    return format_path(path)


def build_rule(doc: Document) -> tuple[Rule | None, list[RuleIssue]]:
    """The rule of a schema-valid document, or the issues that prevent it."""
    raw = doc.value
    b = _Builder(doc)
    stages = b.stages(raw["stages"], ("stages",))
    for s in _leaves(stages):
        if s.where is not None:
            b.check_stage_refs(s.where, (*path_of(s.path), "where"), s.name)
        if s.until is not None:
            b.check_stage_refs(s.until, (*path_of(s.path), "until"), s.name)
    last = stages[-1]
    if last.negate and last.after == "relaxed" and "within" not in raw:
        b.err(
            (*path_of(last.path), "negate"),
            "a pattern ending with a negated relaxed stage "
            "(not_followed_by) needs a window; add within: e.g. within: 30m",
            key=True,
        )
    if "on_timeout" in raw and "within" not in raw:
        b.err(
            ("on_timeout",),
            "partial matches only time out with a window; add within: e.g. within: 2h",
            key=True,
        )
    skip = raw.get("skip", "no_skip")
    if isinstance(skip, dict):
        ((kind, target),) = skip.items()
        if target not in b.order:
            b.err(("skip", kind), f"'{target}' names no stage; stages are: {', '.join(b.order)}")
        skip_v: tuple[str, str | None] = (kind, target)
    else:
        skip_v = (skip, None)
    key = raw["key"]
    key_path, key_expr = b.key(key, ("key",))
    context = None
    if "context" in raw:
        ctx_source = raw["context"]["source"]
        ctx_path, ctx_expr = b.key(raw["context"]["key"], ("context", "key"))
        context = ContextSpec(
            source=(ctx_source,) if isinstance(ctx_source, str) else tuple(ctx_source),
            key=raw["context"]["key"],
            key_path=ctx_path,
            key_expr=ctx_expr,
        )
    durations = {}
    for k in ("max_out_of_orderness", "within"):
        if k in raw:
            durations[k] = parse_duration(raw[k])  # the schema checked the spelling
    emit = b.action(raw["emit"], ("emit",)) if "emit" in raw else None
    on_timeout = b.action(raw["on_timeout"], ("on_timeout",)) if "on_timeout" in raw else None
    if b.issues:
        return None, b.issues
    source = raw["source"]
    rule = Rule(
        name=raw["name"],
        version=raw.get("version", 1),
        source=(source,) if isinstance(source, str) else tuple(source),
        key=key,
        key_path=key_path,
        key_expr=key_expr,
        stages=stages,
        description=raw.get("description", ""),
        id=tuple(raw["id"].split(".")) if "id" in raw else None,
        time=tuple(raw["time"].split(".")) if "time" in raw else None,
        max_out_of_orderness=durations.get("max_out_of_orderness", 0),
        within=durations.get("within"),
        skip=skip_v,
        emit=emit,
        on_timeout=on_timeout,
        context=context,
        file=doc.label,
        text=doc.source or doc.text,
        document=raw,
    )
    return rule, []


def _leaves(stages: tuple[Stage, ...]) -> list[Stage]:
    out: list[Stage] = []
    for s in stages:
        out.extend(_leaves(s.stages) if s.stages else [s])
    return out


def path_of(text: str) -> Path:
    """Inverse of format_path: ``stages[1].where`` -> ``("stages", 1, "where")``."""
    parts: list[str | int] = []
    for name, index in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]", text):
        parts.append(name if name else int(index))
    return tuple(parts)
