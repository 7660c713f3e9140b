"""Durations of the rule format: ``250ms``, ``5s``, ``10m``, ``2h``, ``1d`` -> milliseconds."""

from __future__ import annotations

import re

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d)$")
DURATION_HINT = "write a whole number and a unit: 250ms, 5s, 10m, 2h or 1d"


def parse_duration(text: str) -> int:
    """Return the duration in milliseconds; raise ValueError with a hint when malformed."""
    m = DURATION_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a duration; {DURATION_HINT}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def format_duration(ms: int) -> str:
    """The shortest exact spelling of ``ms`` (inverse of :func:`parse_duration`)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
