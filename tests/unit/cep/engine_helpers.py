"""Small helpers shared by the engine's own unit tests (test_engine_*.py)."""

from __future__ import annotations

from typing import Any

from cep import compile_pattern


def E(tag: str, **extra: Any) -> dict[str, Any]:
    """``E("a1")`` -> ``{"name": "a", "id": "a1"}`` (the name is the tag without digits)."""
    return {"name": tag.rstrip("0123456789"), "id": tag, **extra}


def named(n: str):
    return lambda e: e["name"] == n


def ids(match: Any) -> dict[str, list[str]]:
    return {k: [e["id"] for e in v] for k, v in match.events.items()}


def flat(match: Any) -> list[str]:
    return [e["id"] for v in match.events.values() for e in v]


def run(pattern: Any, tags: list[str], ts: list[int] | None = None, until: int | None = None):
    """Feed events (timestamps 1, 2, ... unless given); returns (matches, timeouts, nfa, state).

    Matches are lists of event ids; timeouts are (ids, timestamp) pairs.
    """
    nfa = compile_pattern(pattern)
    state = nfa.new_state()
    matches: list[list[str]] = []
    timeouts: list[tuple[list[str], int]] = []
    for i, tag in enumerate(tags):
        t = ts[i] if ts is not None else i + 1
        tos, ms = nfa.advance_time(state, t)
        timeouts += [(flat(x), x.timestamp) for x in tos]
        matches += [flat(m) for m in ms]
        matches += [flat(m) for m in nfa.process(state, E(tag), t)]
    if until is not None:
        tos, ms = nfa.advance_time(state, until)
        timeouts += [(flat(x), x.timestamp) for x in tos]
        matches += [flat(m) for m in ms]
    return sorted(matches), sorted(timeouts), nfa, state
