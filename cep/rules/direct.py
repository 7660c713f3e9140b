"""Action ``data`` read straight from the events, without CEL, where that gives CEL's answer.

Most ``data`` values are plain reads: ``stages.b[0].sent``, ``event.flight``,
``context.tier``, ``key`` or a quoted string such as ``'rebooking'``. Evaluating one in CEL
converts the fields it reads into CEL values and the result back (tens of microseconds a
detection); reading it in Python gives the same value when every value CEL would convert is a
*plain scalar*: ``None``, a ``bool``, a ``float``, an ``int`` in CEL's range
(``-2**63 <= v < 2**64``: CEL turns larger ones into doubles) or a ``str`` that is valid
UTF-8 (CEL refuses lone surrogates). CEL gives such a value back unchanged.

:class:`DirectData` is built for a ``data`` tree whose every expression is such a read. Per
detection it first checks every value the CEL path would convert (all the events of the stages
named, projected to the fields read; the context and event fields read; the key); then it
reads each expression. When anything is not plain, or a read would fail (a missing stage
event, index or field), it returns :data:`FALLBACK` and the caller evaluates in CEL, so
errors (their messages included) and every other case stay exactly as CEL makes them.
"""

from __future__ import annotations

from typing import Any

from .celexpr import CelExpr, string_value, tokenize

__all__ = ["FALLBACK", "DirectData", "plain"]

#: What :meth:`DirectData.evaluate` returns when the CEL path must decide.
FALLBACK: Any = object()

_INT_MIN = -(2**63)
_INT_END = 2**64


def plain(value: Any) -> bool:
    """Whether CEL converts ``value`` and gives it back unchanged (see the module doc)."""
    t = type(value)
    if t is str:
        if value.isascii():
            return True
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if t is int:
        return _INT_MIN <= value < _INT_END
    return t is float or t is bool or value is None


# A read: ("lit", value) | ("stage", name, index, field) | ("event", field)
# | ("context", field) | ("key",)
Read = tuple[Any, ...]


def parse_read(expr: CelExpr, stage_names: list[str], reserved: frozenset[str]) -> Read | None:
    """The read ``expr`` is, or None when it is anything else (CEL evaluates it then)."""
    toks = tokenize(expr.source)
    texts = [t.text for t in toks]
    kinds = [t.kind for t in toks]
    if len(toks) == 1:
        tok = toks[0]
        if tok.kind == "ident" and tok.text == "key":
            return ("key",)
        value = string_value(tok)  # a plain quoted string, no escapes
        return None if value is None else ("lit", value)
    if (
        len(toks) == 3
        and texts[0] in ("event", "context")
        and texts[1] == "."
        and kinds[0] == kinds[2] == "ident"
        and texts[2] not in reserved
    ):
        return (texts[0], texts[2])
    if (
        len(toks) == 8
        and texts[0] == "stages"
        and kinds[0] == "ident"
        and texts[1] == "."
        and kinds[2] == "ident"
        and texts[2] in stage_names
        and texts[3] == "["
        and kinds[4] == "num"
        and texts[4].isdigit()
        and texts[4] == str(int(texts[4]))
        and texts[5] == "]"
        and texts[6] == "."
        and kinds[7] == "ident"
        and texts[7] not in reserved
    ):
        return ("stage", texts[2], int(texts[4]), texts[7])
    return None


class DirectData:
    """A ``data`` tree of plain reads, evaluated in Python (see the module doc).

    ``stages``/``context``/``event``/``key``: what the CEL path converts (the plan of
    :class:`cep.rules.evaluate._DataPlan`): ``(stage, fields)`` pairs, the context and
    event fields (False: not read), whether the key is read."""

    __slots__ = ("_context", "_event", "_flat", "_key", "_shape", "_stages")

    def __init__(
        self,
        shape: Any,
        stages: list[tuple[str, frozenset[str]]],
        context: frozenset[str] | bool,
        event: frozenset[str] | bool,
        key: bool,
    ) -> None:
        self._shape = shape
        self._stages = tuple((n, tuple(sorted(f))) for n, f in stages)
        self._context = tuple(sorted(context)) if context is not False else None
        self._event = tuple(sorted(event)) if event is not False else None
        self._key = key
        # the usual tree, a mapping of reads and constants, as (name, kind, a, b, c) rows
        self._flat: tuple[tuple[Any, int, Any, Any, Any], ...] | None = None
        if type(shape) is dict and all(type(v) in (_Leaf, _Const) for v in shape.values()):
            self._flat = tuple(_row(k, v) for k, v in shape.items())

    @classmethod
    def build(
        cls,
        compiled: Any,
        stage_names: list[str],
        reserved: frozenset[str],
        stages: list[tuple[str, frozenset[str] | None]] | None,
        context: frozenset[str] | bool | None,
        event: frozenset[str] | bool | None,
        key: bool,
    ) -> DirectData | None:
        """The direct form of ``compiled`` (None when one expression is not a plain read,
        or the CEL path converts whole events, contexts or stages)."""
        if context is None or event is None:
            return None
        if stages is not None and any(f is None for _, f in stages):
            return None
        shape = _shape(compiled, stage_names, reserved)
        if shape is FALLBACK:
            return None
        return cls(shape, stages or [], context, event, key)  # type: ignore[arg-type]

    def evaluate(
        self,
        stages: dict[str, list[dict[str, Any]]],
        key: Any,
        context: dict[str, Any] | None,
        last: dict[str, Any] | None,
    ) -> Any:
        """The ``data`` value, or :data:`FALLBACK`."""
        # 1. every value the CEL path converts must come back unchanged
        for name, fields in self._stages:
            evs = stages.get(name)
            if evs:
                for e in evs:
                    for f in fields:
                        if f in e:
                            v = e[f]
                            t = type(v)
                            if t is float or (t is str and v.isascii()) or v is None:
                                continue
                            if not plain(v):
                                return FALLBACK
        if self._context is not None and context:
            for f in self._context:
                if f in context and not plain(context[f]):
                    return FALLBACK
        if self._event is not None and last is not None:
            for f in self._event:
                if f in last and not plain(last[f]):
                    return FALLBACK
        if self._key and not plain(key):
            return FALLBACK
        # 2. the reads
        flat = self._flat
        if flat is None:
            return _fill(self._shape, stages, key, context, last)
        out = {}
        for name, kind, a, b, c in flat:
            if kind == _STAGE:
                evs = stages.get(a)
                if not evs or b >= len(evs):
                    return FALLBACK
                e = evs[b]
                if c not in e:
                    return FALLBACK
                out[name] = e[c]
            elif kind == _CONST:
                out[name] = a
            elif kind == _EVENT:
                if last is None or a not in last:
                    return FALLBACK
                out[name] = last[a]
            elif kind == _CONTEXT:
                if not context or a not in context:
                    return FALLBACK
                out[name] = context[a]
            else:
                out[name] = key
        return out


_STAGE, _CONST, _EVENT, _CONTEXT, _KEY = range(5)


def _row(name: Any, node: Any) -> tuple[Any, int, Any, Any, Any]:
    if type(node) is _Const:
        return (name, _CONST, node.value, None, None)
    read = node.read
    kind = read[0]
    if kind == "stage":
        return (name, _STAGE, read[1], read[2], read[3])
    if kind == "lit":
        return (name, _CONST, read[1], None, None)
    if kind == "event":
        return (name, _EVENT, read[1], None, None)
    if kind == "context":
        return (name, _CONTEXT, read[1], None, None)
    return (name, _KEY, None, None, None)


_LEAF = "leaf"


def _shape(node: Any, stage_names: list[str], reserved: frozenset[str]) -> Any:
    """``node`` with each expression replaced by ``(_LEAF, read)``; FALLBACK when one is
    not a plain read."""
    if isinstance(node, CelExpr):
        read = parse_read(node, stage_names, reserved)
        return FALLBACK if read is None else _Leaf(read)
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            s = _shape(v, stage_names, reserved)
            if s is FALLBACK:
                return FALLBACK
            out[k] = s
        return out
    if isinstance(node, list):
        items = []
        for v in node:
            s = _shape(v, stage_names, reserved)
            if s is FALLBACK:
                return FALLBACK
            items.append(s)
        return items
    return _Const(node)


class _Leaf:
    __slots__ = ("read",)

    def __init__(self, read: Read) -> None:
        self.read = read


class _Const:
    """A value of the tree that is no expression: given back as it is (the same object)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class _Missing(Exception):
    """A read CEL would fail: the caller falls back to CEL for its error."""


def _fill(
    shape: Any,
    stages: dict[str, list[dict[str, Any]]],
    key: Any,
    context: dict[str, Any] | None,
    last: dict[str, Any] | None,
) -> Any:
    try:
        return _value(shape, stages, key, context, last)
    except _Missing:
        return FALLBACK


def _value(
    shape: Any,
    stages: dict[str, list[dict[str, Any]]],
    key: Any,
    context: dict[str, Any] | None,
    last: dict[str, Any] | None,
) -> Any:
    t = type(shape)
    if t is dict:
        return {k: _value(v, stages, key, context, last) for k, v in shape.items()}
    if t is _Leaf:
        read = shape.read
        kind = read[0]
        if kind == "stage":
            evs = stages.get(read[1]) or ()
            if read[2] >= len(evs):
                raise _Missing
            e = evs[read[2]]
            f = read[3]
            if f not in e:
                raise _Missing
            return e[f]
        if kind == "lit":
            return read[1]
        if kind == "event":
            if last is None or read[1] not in last:
                raise _Missing
            return last[read[1]]
        if kind == "context":
            if not context or read[1] not in context:
                raise _Missing
            return context[read[1]]
        return key
    if t is list:
        return [_value(v, stages, key, context, last) for v in shape]
    return shape.value
