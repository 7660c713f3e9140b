"""A small harness to port Flink CEP's NFA tests: Flink-like events, a feeder, comparisons.

``feed`` drives the engine the way Flink's ``NFATestHarness.consumeRecord`` does: for every
record, ``advance_time(ts)`` then ``process(event, ts)``; matches of both calls are collected
(Flink's harness drops the ``advanceTime`` ones, which only differ for ``within`` patterns,
whose ports check timeouts explicitly).

``compare_patterns`` is Flink's ``NFATestUtilities.comparePatterns``: each match is flattened
to its events, events inside a match are sorted by (name, price, id), and the two lists of
matches are compared as multisets.

Each ported test returns a :class:`Case` and is wrapped by :func:`flink_case`, which runs it
against the engine and registers it, so that ``test_flink_reference.py`` can also replay the
cases that carry a reference :class:`~reference.Spec` through the brute-force matcher.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Event = dict[str, Any]
Record = tuple[Event, int]


def ev(id: int, name: str, price: float, volume: float | None = None) -> Event:
    """Flink's ``Event(id, name, price)``; with ``volume`` it is a ``SubEvent``."""
    e: Event = {"id": id, "name": name, "price": float(price)}
    if volume is not None:
        e["volume"] = float(volume)
    return e


def is_sub(e: Event) -> bool:
    """Flink's ``subtype(SubEvent.class)``."""
    return "volume" in e


def name_is(n: str) -> Callable[[Event], bool]:
    return lambda e: e["name"] == n


def name_has(s: str) -> Callable[[Event], bool]:
    return lambda e: s in e["name"]


def ekey(e: Event) -> tuple:
    """Flink's ``Event.equals``/ordering: name, price, id (and volume for sub events)."""
    return (e["name"], float(e["price"]), e["id"], e.get("volume", -1.0))


def canon(matches: Iterable[Sequence[Event]]) -> list[tuple]:
    return sorted(tuple(sorted(ekey(e) for e in m)) for m in matches)


def flat(match: Any) -> list[Event]:
    return [e for evs in match.events.values() for e in evs]


def compare_patterns(actual: Iterable[Sequence[Event]], expected: Iterable[Sequence[Event]]):
    got, want = canon(actual), canon(expected)
    assert got == want, f"\n got: {_show(got)}\nwant: {_show(want)}"


def _show(matches: list[tuple]) -> str:
    return "[" + ", ".join("[" + " ".join(f"{k[0]}{k[2]}" for k in m) + "]" for m in matches) + "]"


@dataclass
class Run:
    """Everything the engine returned while a case was fed."""

    per_call: list[list[Any]] = field(default_factory=list)  # Match objects per call
    timeouts: list[Any] = field(default_factory=list)  # Timeout objects
    state: Any = None
    nfa: Any = None

    @property
    def matches(self) -> list[Any]:
        return [m for call in self.per_call for m in call]


def feed(
    pattern: Any,
    records: Sequence[Record],
    final_advance: int | None = None,
    roundtrip: bool = False,
) -> Run:
    """Compile ``pattern`` and feed ``records`` (optionally round-tripping state via bytes)."""
    from cep import compile_pattern

    nfa = compile_pattern(pattern)
    state = nfa.new_state()
    run = Run(nfa=nfa)
    for event, ts in records:
        if roundtrip:
            state = nfa.state_from_bytes(state.to_bytes())
        timeouts, matches = nfa.advance_time(state, ts)
        run.timeouts.extend(timeouts)
        run.per_call.append(list(matches))
        run.per_call.append(list(nfa.process(state, event, ts)))
    if final_advance is not None:
        timeouts, matches = nfa.advance_time(state, final_advance)
        run.timeouts.extend(timeouts)
        run.per_call.append(list(matches))
    run.state = state
    return run


def run(pattern: Any, records: Sequence[Record]) -> list[list[int]]:
    """Matches as lists of event ids (stage order), all calls of a :func:`feed` together."""
    return [[e["id"] for e in flat(m)] for m in feed(pattern, records).matches]


@dataclass
class Case:
    """One ported Flink test.

    ``expected`` are Flink's expected matches (lists of events, compared as a multiset) unless
    ``check`` is given, which then receives the :class:`Run` and asserts Flink's verdict itself
    (``expected`` may still be given then, for the reference replay).
    ``spec`` (optional) describes the same pattern to the reference matcher.
    """

    pattern: Callable[[], Any]
    records: list[Record]
    expected: list[list[Event]] | None = None
    check: Callable[[Run], None] | None = None
    spec: Any = None
    final_advance: int | None = None
    expected_timeouts: set[tuple[tuple, int]] | None = None  # {(canon events, ts)}


CASES: dict[str, Callable[[], Case]] = {}


def timeout_set(run: Run) -> set[tuple[tuple, int]]:
    return {(tuple(sorted(ekey(e) for e in flat(t))), t.timestamp) for t in run.timeouts}


def tkey(events: Sequence[Event], ts: int) -> tuple[tuple, int]:
    return (tuple(sorted(ekey(e) for e in events)), ts)


def check_engine(case: Case, roundtrip: bool = False) -> Run:
    run = feed(case.pattern(), case.records, case.final_advance, roundtrip=roundtrip)
    if case.check is not None:
        case.check(run)
    else:
        assert case.expected is not None
        compare_patterns([flat(m) for m in run.matches], case.expected)
    if case.expected_timeouts is not None:
        assert timeout_set(run) == case.expected_timeouts
    return run


def flink_case(flink_file: str, flink_test: str) -> Callable[[Callable[[], Case]], Callable]:
    """Register a case builder under ``File.test`` and turn it into a pytest test."""

    def deco(builder: Callable[[], Case]) -> Callable[[], None]:
        CASES[f"{flink_file}.{flink_test}"] = builder

        @functools.wraps(builder)
        def test() -> None:
            check_engine(builder())

        test.flink_id = f"{flink_file}.{flink_test}"  # type: ignore[attr-defined]
        return test

    return deco


class _Lazy:
    """``cep`` names resolved on use, so case data loads even while ``cep`` is incomplete."""

    def __init__(self, module: str, name: str) -> None:
        self._module, self._name = module, name

    def __getattr__(self, attr: str) -> Any:
        import importlib

        return getattr(getattr(importlib.import_module(self._module), self._name), attr)


P = _Lazy("cep", "Pattern")
Skip = _Lazy("cep", "SkipStrategy")
Within = _Lazy("cep.pattern", "WithinType")
