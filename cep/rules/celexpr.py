"""CEL expressions of a rule: compile, analyse what they read, split off guards.

Converting a Python value into CEL costs about a microsecond per string field, so an
expression is analysed once at load time: which ``event`` fields, ``context`` fields
and ``stages`` it reads. At run time only those fields are converted, once per event.
A top-level conjunct ``event.F == 'literal'`` is split off as a *guard*: it is checked
in Python (and handed to the engine for indexing) and the rest stays CEL.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import cel

#: Variables a condition (``where``/``until``) or a ``data`` value may use.
VARIABLES = frozenset({"event", "stages", "key", "context"})
#: Variables a ``key`` expression may use.
KEY_VARIABLES = frozenset({"event"})

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>(?:[rR][bB]?|[bB][rR]?)?(?:'''(?:.|\n)*?'''|\"\"\"(?:.|\n)*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>\d+\.?\d*(?:[eE][+-]?\d+)?[uU]?)
  | (?P<op>&&|\|\||==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    """,
    re.VERBOSE,
)
_CEL_POS_RE = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


class CelCompileError(ValueError):
    """A CEL expression that does not compile; ``line``/``column`` are 1-based, in the expression."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Reads:
    """What an expression reads. ``None`` means "all of it" (used in a way we cannot narrow)."""

    variables: frozenset[str]
    event_fields: frozenset[str] | None
    context_fields: frozenset[str] | None
    stage_names: frozenset[str] | None
    bound: frozenset[str]


@dataclass(frozen=True, slots=True)
class CelExpr:
    """A compiled expression and what it reads."""

    source: str
    program: Any  # cel.Program
    reads: Reads

    def evaluate(self, variables: Any) -> Any:
        return self.program.execute(variables)


def tokenize(src: str) -> list[Token]:
    """CEL tokens (enough to find identifiers and operators outside string literals)."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(src):
        m = _TOKEN_RE.match(src, pos)
        if not m:  # the CEL parser reports it precisely; keep scanning
            tokens.append(Token("other", src[pos], pos))
            pos += 1
            continue
        kind = m.lastgroup or "other"
        if kind != "ws":
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    return tokens


def string_value(tok: Token) -> str | None:
    """The value of a plain quoted string literal without escapes, else None."""
    t = tok.text
    if tok.kind != "str" or t[0] not in "'\"" or "\\" in t or t.startswith(("'''", '"""')):
        return None
    return t[1:-1]


def _member_reads(tokens: list[Token], name: str) -> frozenset[str] | None:
    """Names selected right after the top-level identifier ``name`` (``name.f``, ``name['f']``)."""
    fields: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text != name:
            continue
        if i > 0 and tokens[i - 1].text == ".":
            continue  # a field called like the variable: x.event
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if nxt and nxt.text == "." and i + 2 < len(tokens) and tokens[i + 2].kind == "ident":
            fields.add(tokens[i + 2].text)
            continue
        if (
            nxt
            and nxt.text == "["
            and i + 3 < len(tokens)
            and string_value(tokens[i + 2]) is not None
            and tokens[i + 3].text == "]"
        ):
            fields.add(string_value(tokens[i + 2]) or "")
            continue
        return None
    return frozenset(fields)


def stage_fields(src: str) -> dict[str, frozenset[str] | None] | None:
    """Per stage named in ``src``, the event fields it reads as ``stages.NAME[INDEX].FIELD``.

    A stage read any other way (``size(stages.a)``, ``stages.a[0]``, ``stages.a[0].size()``,
    a macro over it) maps to
    None (whole events); the result is None when ``stages`` itself is used another way.
    """
    tokens = tokenize(src)
    out: dict[str, set[str] | None] = {}
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok.kind != "ident" or tok.text != "stages":
            continue
        if i > 0 and tokens[i - 1].text == ".":
            continue  # a field called like the variable: x.stages
        if not (i + 2 < n and tokens[i + 1].text == "." and tokens[i + 2].kind == "ident"):
            return None
        name = tokens[i + 2].text
        j = i + 3
        if (
            j + 4 < n
            and tokens[j].text == "["
            and tokens[j + 1].kind == "num"
            and tokens[j + 2].text == "]"
            and tokens[j + 3].text == "."
            and tokens[j + 4].kind == "ident"
            and not (j + 5 < n and tokens[j + 5].text == "(")  # a method of the event map
        ):
            if name not in out:
                out[name] = set()
            fields = out[name]
            if fields is not None:
                fields.add(tokens[j + 4].text)
        else:
            out[name] = None
    return {k: (frozenset(v) if v is not None else None) for k, v in out.items()}


def analyse(src: str, program: Any) -> Reads:
    tokens = tokenize(src)
    bound = set()
    for i, tok in enumerate(tokens[:-3]):
        if (
            tok.text == "."
            and tokens[i + 1].text in _MACROS
            and tokens[i + 2].text == "("
            and tokens[i + 3].kind == "ident"
        ):
            bound.add(tokens[i + 3].text)
    variables = frozenset(program.variables())
    return Reads(
        variables=variables,
        event_fields=_member_reads(tokens, "event") if "event" in variables else frozenset(),
        context_fields=_member_reads(tokens, "context") if "context" in variables else frozenset(),
        stage_names=_member_reads(tokens, "stages") if "stages" in variables else frozenset(),
        bound=frozenset(bound),
    )


def compile_cel(src: str, allowed: frozenset[str] = VARIABLES) -> CelExpr:
    """Compile ``src``; raise CelCompileError naming the column, or an unknown variable."""
    try:
        program = cel.compile(src)
    except ValueError as exc:
        text = str(exc)
        m = _CEL_POS_RE.search(text)
        if m:
            raise CelCompileError(
                f"CEL syntax error at line {m.group(1)}, column {m.group(2)}: {_short(m.group(3))}",
                int(m.group(1)),
                int(m.group(2)),
            ) from None
        raise CelCompileError(f"CEL syntax error: {text}") from None
    reads = analyse(src, program)
    unknown = sorted(reads.variables - allowed - reads.bound)
    if unknown:
        name = unknown[0]
        pos = _first_ident(src, name)
        line, column = _line_col(src, pos)
        raise CelCompileError(
            f"unknown variable '{name}' at line {line}, column {column}; "
            f"use {', '.join(sorted(allowed))}",
            line,
            column,
        )
    return CelExpr(src, program, reads)


def _short(message: str) -> str:
    message = message.strip().removeprefix("Syntax error: ")
    if message.startswith("mismatched input '<EOF>'"):
        return "the expression ends too early"
    return re.sub(r" expecting (\{.*\}|\S+)$", "", message)


def _first_ident(src: str, name: str) -> int:
    for tok in tokenize(src):
        if tok.kind == "ident" and tok.text == name:
            return tok.pos
    return 0


def _line_col(src: str, pos: int) -> tuple[int, int]:
    line = src.count("\n", 0, pos) + 1
    column = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return line, column


def split_guard(src: str) -> tuple[tuple[str, str] | None, str | None]:
    """Split ``event.F == 'v' && rest`` into ``(("F", "v"), "rest")``.

    Returns ``(None, src)`` when there is no top-level equality guard; the residual is
    ``None`` when the guard is the whole condition.
    """
    tokens = tokenize(src)
    depth = 0
    cuts: list[int] = []
    for i, tok in enumerate(tokens):
        if tok.text in "([{":
            depth += 1
        elif tok.text in ")]}":
            depth -= 1
        elif depth == 0 and tok.text in ("||", "?"):
            return None, src
        elif depth == 0 and tok.text == "&&":
            cuts.append(i)
    bounds = [-1, *cuts, len(tokens)]
    parts = [tokens[a + 1 : b] for a, b in itertools.pairwise(bounds)]
    for n, part in enumerate(parts):
        guard = _guard_of(part)
        if guard is None:
            continue
        rest = [p for k, p in enumerate(parts) if k != n]
        if not rest:
            return guard, None
        residual = " && ".join(src[p[0].pos : p[-1].pos + len(p[-1].text)] for p in rest)
        return guard, residual
    return None, src


def _guard_of(part: list[Token]) -> tuple[str, str] | None:
    texts = [t.text for t in part]
    if len(part) == 5 and texts[0] == "event" and texts[1] == "." and texts[3] == "==":
        value = string_value(part[4])
        if part[2].kind == "ident" and value is not None:
            return part[2].text, value
    if len(part) == 5 and texts[1] == "==" and texts[2] == "event" and texts[3] == ".":
        value = string_value(part[0])
        if part[4].kind == "ident" and value is not None:
            return part[4].text, value
    return None


def project(value: dict[str, Any], fields: frozenset[str] | None, drop: str) -> dict[str, Any]:
    """The fields of ``value`` an expression reads (all but ``drop`` when ``fields`` is None)."""
    if fields is None:
        if drop in value:
            return {k: v for k, v in value.items() if k != drop}
        return value
    return {f: value[f] for f in fields if f in value}


#: Prefixes of the flat variables :func:`flatten` introduces (no rule can name them:
#: validation only admits event, stages, key and context).
EVENT_VAR = "kairos_ev_"
EVENT_HAS_VAR = "kairos_evh_"
CONTEXT_VAR = "kairos_cx_"
CONTEXT_HAS_VAR = "kairos_cxh_"


def flat_name(prefix: str, field: str) -> str:
    if field.isidentifier() and field.isascii():
        return prefix + field
    return prefix + "x" + field.encode().hex()


@dataclass(frozen=True, slots=True)
class FlatExpr:
    """An expression rewritten to read top-level variables instead of ``event.F``.

    Converting ``{"event": {"v": 1}}`` into CEL costs about five times as much as
    ``{"kairos_ev_v": 1}`` (map keys go through a slow conversion), so ``event.F``,
    ``event['F']``, ``has(event.F)`` and the same forms of ``context`` become flat variables.
    """

    program: Any
    event_vars: tuple[tuple[str, str], ...]  # (variable, field)
    has_vars: tuple[tuple[str, str], ...]
    context_vars: tuple[tuple[str, str], ...]
    context_has_vars: tuple[tuple[str, str], ...]
    uses: frozenset[str]  # variables still passed whole: key, stages, event, context


def flatten(expr: CelExpr) -> FlatExpr:
    """Rewrite ``expr`` with flat variables where its reads allow it."""
    try:
        return _flatten(expr)
    except ValueError:  # a rewrite CEL rejects: keep the expression as written
        return FlatExpr(
            program=expr.program,
            event_vars=(),
            has_vars=(),
            context_vars=(),
            context_has_vars=(),
            uses=frozenset(expr.reads.variables - expr.reads.bound),
        )


def _flatten(expr: CelExpr) -> FlatExpr:
    src = expr.source
    tokens = tokenize(src)
    flat = {
        "event": expr.reads.event_fields is not None,
        "context": expr.reads.context_fields is not None,
    }
    prefixes = {
        "event": (EVENT_VAR, EVENT_HAS_VAR),
        "context": (CONTEXT_VAR, CONTEXT_HAS_VAR),
    }
    values: dict[str, dict[str, str]] = {"event": {}, "context": {}}
    tests: dict[str, dict[str, str]] = {"event": {}, "context": {}}
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement)
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev = tokens[i - 1].text if i else ""
        if tok.kind == "ident" and prev != "." and tok.text == "has":
            texts = [t.text for t in tokens[i : i + 6]]
            var = texts[2] if len(texts) > 2 else ""
            if (
                len(texts) == 6
                and texts[1] == "("
                and var in flat
                and flat[var]
                and texts[3] == "."
                and tokens[i + 4].kind == "ident"
                and texts[5] == ")"
            ):
                field = texts[4]
                name = tests[var].setdefault(field, flat_name(prefixes[var][1], field))
                edits.append((tok.pos, tokens[i + 5].pos + 1, name))
                i += 6
                continue
        if tok.kind == "ident" and prev != "." and tok.text in flat and flat[tok.text]:
            member, width = _member(tokens, i)
            if member is not None:
                seen = values[tok.text]
                name = seen.setdefault(member, flat_name(prefixes[tok.text][0], member))
                last = tokens[i + width - 1]
                edits.append((tok.pos, last.pos + len(last.text), name))
                i += width
                continue
        i += 1
    out = src
    for start, end, name in reversed(edits):
        out = out[:start] + name + out[end:]
    uses = set(expr.reads.variables) - expr.reads.bound
    for var, done in flat.items():
        if done:
            uses.discard(var)
    return FlatExpr(
        program=cel.compile(out),
        event_vars=tuple((n, f) for f, n in values["event"].items()),
        has_vars=tuple((n, f) for f, n in tests["event"].items()),
        context_vars=tuple((n, f) for f, n in values["context"].items()),
        context_has_vars=tuple((n, f) for f, n in tests["context"].items()),
        uses=frozenset(uses),
    )


def _member(tokens: list[Token], i: int) -> tuple[str | None, int]:
    """The field selected right after tokens[i] and how many tokens the selection spans."""
    if i + 2 < len(tokens) and tokens[i + 1].text == "." and tokens[i + 2].kind == "ident":
        return tokens[i + 2].text, 3
    if (
        i + 3 < len(tokens)
        and tokens[i + 1].text == "["
        and string_value(tokens[i + 2]) is not None
        and tokens[i + 3].text == "]"
    ):
        return string_value(tokens[i + 2]), 4
    return None, 0
