"""Per-key engine state (Flink's ``NFAState`` plus the key's part of the ``SharedBuffer``).

A computation state (one run of the automaton: a partial match) is a tuple
``(state_index, node, version, start_ts, prev_ts, start_seq)``: the NFA state it waits in, the
buffer node of the last event it took, its Dewey version, the timestamps of its first and last
event and the sequence number of its first event (``None`` for the start run).
"""

from __future__ import annotations

from typing import Any

from cep.buffer import NodeId, SharedBuffer, Version

CState = tuple[int, NodeId | None, Version, int, int, int | None]

STATE_FORMAT_VERSION = 1
_NEVER = float("inf")


def cs_key(cs: CState) -> tuple[float, float]:
    """Flink's ``COMPUTATION_STATE_COMPARATOR``: by first event; the start run sorts last."""
    if cs[5] is None:
        return (_NEVER, _NEVER)
    return (cs[3], cs[5])


_EMPTY: tuple[Any, ...] = ()


def _always(event: Any) -> bool:
    """The condition of ``WATCH_ALL``: holds for every event."""
    return True


#: ``NFAState.watch`` when not known (or when a run has no quick check): every event may
#: change the state, so the caller looks at the runs themselves
WATCH_ALL: tuple[Any, ...] = (_always,)


class NFAState(SharedBuffer):
    """The per-key value passed to and returned from the NFA; mutated in place.

    It is its own shared buffer (``nodes``/``events``). Rarely used parts (held-back matches,
    kept timeouts, the event-time buffer) start as a shared empty tuple and become lists when
    first written, which keeps an idle key small (a million keys fit in memory). Code that
    replaces ``partial`` sets ``watch`` to ``WATCH_ALL``.
    """

    __slots__ = (
        "_nfa",
        "arrivals",
        "completed",
        "deadline",
        "dropped_partial_matches",
        "early",
        "max_ts",
        "partial",
        "pending_timeouts",
        "seq",
        "watch",
        "watermark",
    )

    def __init__(self, nfa: Any, partial: list[CState]) -> None:
        self._nfa = nfa
        self.partial: list[CState] = partial
        self.completed: Any = _EMPTY  # list[CState] once used
        self.nodes = {}
        self.events = {}
        self.seq = 0
        self.dropped_partial_matches = 0
        self.pending_timeouts: Any = _EMPTY  # list[Timeout] once used
        self.deadline: float = _NEVER
        # event-time buffer (used by EventTimeProcessor): [ts, arrival, event], sorted
        self.early: Any = _EMPTY
        self.arrivals = 0
        self.watermark: float = -_NEVER
        self.max_ts: float = -_NEVER
        # the distinct quick-check conditions of ``partial`` (``NFA._watch``), kept by
        # ``KeyedRunner``; ``WATCH_ALL`` = not known. Not serialised; reset with ``partial``.
        self.watch: tuple[Any, ...] = WATCH_ALL

    @property
    def partial_match_count(self) -> int:
        """Partial matches held (the start run not counted)."""
        return sum(1 for cs in self.partial if cs[5] is not None) + len(self.completed)

    @property
    def is_idle(self) -> bool:
        """Nothing but the start run: no partial match, nothing held back, nothing pending."""
        return (
            len(self.partial) == 1
            and self.partial[0][5] is None
            and not self.completed
            and not self.pending_timeouts
            and not self.early
        )

    def to_bytes(self) -> bytes:
        """Versioned, compact orjson bytes; load with ``nfa.state_from_bytes``."""
        from cep.serde import dump_state

        return dump_state(self._nfa, self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NFAState):
            return NotImplemented
        return (
            self.partial == other.partial
            and list(self.completed) == list(other.completed)
            and self.nodes == other.nodes
            and self.events == other.events
            and self.seq == other.seq
            and self.dropped_partial_matches == other.dropped_partial_matches
            and list(self.early) == list(other.early)
            and self.watermark == other.watermark
            and self.max_ts == other.max_ts
        )

    def __repr__(self) -> str:
        return (
            f"NFAState(partial={len(self.partial)}, completed={len(self.completed)}, "
            f"events={len(self.events)}, dropped={self.dropped_partial_matches})"
        )
