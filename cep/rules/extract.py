"""Per-event values a rule needs before the engine sees the event: key, time and id."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson

from .errors import EventError
from .model import Rule

_MISSING = object()


def get_path(event: Any, path: tuple[str, ...]) -> Any:
    """``event[a][b]...`` or the ``_MISSING`` marker."""
    value = event
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def parse_time(value: Any) -> int:
    """Epoch milliseconds from epoch millis (int/float) or an RFC 3339 string with offset."""
    if isinstance(value, bool):
        raise ValueError(f"expected epoch millis or an RFC 3339 time, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an RFC 3339 time (e.g. 2026-11-25T10:00:00Z)"
            ) from None
        if dt.tzinfo is None:
            raise ValueError(f"{value!r} has no UTC offset; add Z or +01:00")
        return int(dt.timestamp() * 1000)
    raise ValueError(f"expected epoch millis or an RFC 3339 time, got {type(value).__name__}")


def normalise_key(value: Any) -> str:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"a key is a non-empty string or an integer, got {value!r}")


def key_of(rule: Rule, event: dict[str, Any]) -> str:
    """The rule's key of ``event``; EventError when it has none."""
    return extract_key(rule.name, rule.key, rule.key_path, rule.key_expr, event)


def context_key_of(rule: Rule, record: dict[str, Any]) -> str:
    """The key a context record of ``rule`` belongs to; EventError when it has none."""
    spec = rule.context
    assert spec is not None
    return extract_key(rule.name, spec.key, spec.key_path, spec.key_expr, record, "context key")


def extract_key(
    name: str,
    text: str,
    path: tuple[str, ...] | None,
    expr: Any,
    event: dict[str, Any],
    what: str = "key",
) -> str:
    if path is not None:
        value = get_path(event, path)
        if value is _MISSING:
            raise EventError(f"rule {name}: no {what} field '{text}' in the event", "missing-key")
    else:
        fields = expr.reads.event_fields
        proj = event if fields is None else {f: event[f] for f in fields if f in event}
        try:
            value = expr.program.execute({"event": proj})
        except Exception as exc:
            raise EventError(
                f"rule {name}: {what} expression failed: {exc}", "invalid-key"
            ) from None
    try:
        return normalise_key(value)
    except ValueError as exc:
        raise EventError(f"rule {name}: {exc}", "invalid-key") from None


def time_of(rule: Rule, event: dict[str, Any]) -> int | None:
    """Event time in epoch millis, or None for a processing-time rule."""
    if rule.time is None:
        return None
    field = ".".join(rule.time)
    value = get_path(event, rule.time)
    if value is _MISSING:
        raise EventError(f"rule {rule.name}: no time field '{field}' in the event", "missing-time")
    try:
        return parse_time(value)
    except ValueError as exc:
        raise EventError(f"rule {rule.name}: time field '{field}': {exc}", "invalid-time") from None


def id_of(rule: Rule, event: dict[str, Any]) -> Any:
    """The event's id from the rule's ``id`` field, or None."""
    if rule.id is None:
        return None
    value = get_path(event, rule.id)
    return None if value is _MISSING else value


def content_id(event: Any) -> str:
    """A stable id for an event without one: 16 hex chars of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(orjson.dumps(event, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def make_getter(path: tuple[str, ...]) -> Any:
    """A fast ``get_path`` for one path (the common one-field case is a dict lookup)."""
    if len(path) == 1:
        (field,) = path

        def one(event: dict[str, Any]) -> Any:
            return event.get(field, _MISSING)

        return one
    return lambda event: get_path(event, path)


class Extractor:
    """Key, time and id of an event for one rule, with the field lookups prepared once."""

    __slots__ = ("_fields", "_id", "_key", "_time", "rule")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self._key = make_getter(rule.key_path) if rule.key_path is not None else None
        self._time = make_getter(rule.time) if rule.time is not None else None
        self._id = make_getter(rule.id) if rule.id is not None else None
        # (key, time, id) field names when each is one top-level field: read inline
        one = [
            p[0] if p is not None and len(p) == 1 else None
            for p in (rule.key_path, rule.time, rule.id)
        ]
        self._fields = tuple(one) if None not in one else None

    def values(self, event: dict[str, Any]) -> tuple[str, int | None, Any]:
        """``(key(event), time(event), id(event))``; EventError as :meth:`key` and :meth:`time`."""
        fields = self._fields
        if fields is None:
            return self.key(event), self.time(event), self.id(event)
        key_field, time_field, id_field = fields
        key = event.get(key_field)
        if type(key) is not str or not key:
            key = self.key(event)
        ts = event.get(time_field)
        if type(ts) is not int:
            ts = self.time(event)
        return key, ts, event.get(id_field)

    def key(self, event: dict[str, Any]) -> str:
        if self._key is None:
            return key_of(self.rule, event)
        value = self._key(event)
        if type(value) is str and value:
            return value
        return key_of(self.rule, event)  # the slow path names the problem

    def time(self, event: dict[str, Any]) -> int | None:
        if self._time is None:
            return None
        value = self._time(event)
        if type(value) is int:
            return value
        return time_of(self.rule, event)

    def id(self, event: dict[str, Any]) -> Any:
        if self._id is None:
            return None
        value = self._id(event)
        return None if value is _MISSING else value
