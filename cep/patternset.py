"""Many compiled patterns on one stream, indexed so an event only reaches patterns it can affect.

A pattern is touched by an event only if the key holds a partial match for it, or the event can
start one. "Can start" is decided by the ``guard=(field, value)`` hints of the conditions on the
pattern's start edges: patterns whose start edges all carry guards are indexed by
``field -> value -> patterns``; the others are tried for every event. Per key, only patterns
with live state are stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from cep.errors import StateFormatError
from cep.match import Match, Timeout
from cep.nfa import NFA
from cep.serde import state_from_doc, state_to_doc
from cep.state import STATE_FORMAT_VERSION, NFAState

_INF = float("inf")


class PatternSetState:
    """Per-key state of a :class:`PatternSet`: the live NFA states by pattern index."""

    __slots__ = ("arrivals", "early", "max_ts", "states", "watermark")

    def __init__(self) -> None:
        self.states: dict[int, NFAState] = {}
        self.early: list[list[Any]] = []
        self.arrivals = 0
        self.watermark: float = -_INF
        self.max_ts: float = -_INF

    @property
    def is_idle(self) -> bool:
        return not self.states and not self.early


class PatternSet:
    """Compiled patterns sharing one stream. Matches and timeouts come as ``(name, value)``."""

    def __init__(self, nfas: Sequence[NFA] | Mapping[str, NFA]) -> None:
        if isinstance(nfas, Mapping):
            self.names = list(nfas.keys())
            self.nfas = list(nfas.values())
        else:
            self.nfas = list(nfas)
            self.names = [str(i) for i in range(len(self.nfas))]
        self.index: dict[str, dict[Any, list[int]]] = {}
        self.always: list[int] = []
        for i, nfa in enumerate(self.nfas):
            guards = nfa.start_guards
            if guards is None:
                self.always.append(i)
                continue
            for field, value in guards:
                self.index.setdefault(field, {}).setdefault(value, []).append(i)
        self._fields = list(self.index.items())
        self._one_field = self._fields[0] if len(self._fields) == 1 and not self.always else None

    def new_state(self) -> PatternSetState:
        return PatternSetState()

    def candidates(self, state: PatternSetState, event: Any) -> list[int]:
        """Indices of the patterns this event must be given to, in order."""
        hits: list[int] | None = None
        if self._fields and (type(event) is dict or isinstance(event, Mapping)):
            for field, values in self._fields:
                try:
                    h = values.get(event.get(field))
                except TypeError:  # unhashable value: no guard can equal it
                    continue
                if h:
                    hits = h if hits is None else hits + h
        live = state.states
        if not self.always:
            if not live:
                if hits is None:
                    return []
                return hits if len(self._fields) == 1 else sorted(set(hits))
            if hits is None:
                return sorted(live) if len(live) > 1 else list(live)
        cands = set(live)
        cands.update(self.always)
        if hits:
            cands.update(hits)
        return sorted(cands)

    def process(
        self, state: PatternSetState, event: Any, timestamp: int
    ) -> list[tuple[str, Match]]:
        out: list[tuple[str, Match]] = []
        live = state.states
        # ``hits``: the patterns whose start guards the event matches; a pattern not among
        # them cannot start a run with this event, so its start run is left out of the quick
        # check below (only known when the one-field shortcut computed it)
        hits: list[int] | None = None
        guarded = False
        if self._one_field is not None and type(event) is dict:
            guarded = True
            # ``candidates`` for the common case: one guarded field, no unguarded pattern
            field, values = self._one_field
            try:
                hits = values.get(event.get(field))
            except TypeError:  # unhashable value: no guard can equal it
                hits = None
            if not live:
                if not hits:
                    return out
                cands = hits
            elif not hits:
                cands = sorted(live) if len(live) > 1 else list(live)
            else:
                cands = sorted(set(live).union(hits))
        else:
            cands = self.candidates(state, event)
        nfas, names = self.nfas, self.names
        for i in cands:
            nfa = nfas[i]
            st = live.get(i)
            if st is None:
                started = nfa.start_new(event, timestamp)
                if started is None:
                    continue
                st, ms = started
            else:
                if timestamp < st.deadline:
                    # ``NFA.process``'s quick check, inlined: if every run ignores the event
                    # the state is unchanged (and stays live: a live state is never idle)
                    quick = nfa._quick
                    last = None
                    skip_start = -1
                    if guarded and (hits is None or i not in hits):
                        skip_start = nfa.start_index
                    for cs in st.partial:
                        if cs[0] == skip_start:
                            continue  # the start run: its guard rules the event out
                        key, fn = quick[cs[0]]
                        if key is None:
                            break
                        if key != last:
                            if fn(event):
                                break
                            last = key
                    else:
                        continue
                    # what ``NFA.process`` does next (no time to advance), with the
                    # conditions already evaluated
                    cache: dict[int, bool] = {} if last is None else {last: False}
                    if key is not None:
                        cache[key] = True
                    ms = []
                    nfa._process(st, event, timestamp, ms, cache)
                else:
                    ms = nfa.process(st, event, timestamp)
            if ms:
                name = names[i]
                for m in ms:
                    out.append((name, m))
            partial = st.partial
            if (
                len(partial) == 1
                and partial[0][5] is None
                and not st.completed
                and not st.pending_timeouts
                and not st.early
            ):
                live.pop(i, None)  # idle: the same as a fresh state
            else:
                live[i] = st
        return out

    def advance_time(
        self, state: PatternSetState, timestamp: int
    ) -> tuple[list[tuple[str, Timeout]], list[tuple[str, Match]]]:
        timeouts: list[tuple[str, Timeout]] = []
        matches: list[tuple[str, Match]] = []
        for i in sorted(state.states):
            st = state.states[i]
            if timestamp < st.deadline and not st.pending_timeouts:
                continue  # nothing due: advance_time would return nothing and change nothing
            t, m = self.nfas[i].advance_time(st, timestamp)
            timeouts.extend((self.names[i], x) for x in t)
            matches.extend((self.names[i], x) for x in m)
            self._keep(state, i, st)
        return timeouts, matches

    def next_deadline(self, state: PatternSetState) -> float | None:
        best = _INF
        for st in state.states.values():
            # ``NFA.next_deadline``, inlined
            pending = st.pending_timeouts
            d = min(t.timestamp for t in pending) if pending else st.deadline
            if d < best:
                best = d
        return None if best == _INF else best

    @staticmethod
    def _keep(state: PatternSetState, i: int, st: NFAState) -> None:
        if st.is_idle:
            state.states.pop(i, None)
        else:
            state.states[i] = st

    def to_bytes(self, state: PatternSetState) -> bytes:
        doc: dict[str, Any] = {
            "v": STATE_FORMAT_VERSION,
            "k": {self.names[i]: state_to_doc(self.nfas[i], st) for i, st in state.states.items()},
        }
        if state.early or state.arrivals:
            doc["o"], doc["a"] = state.early, state.arrivals
            doc["w"] = None if state.watermark == -_INF else state.watermark
            doc["m"] = None if state.max_ts == -_INF else state.max_ts
        return orjson.dumps(doc)

    def state_from_bytes(self, blob: bytes) -> PatternSetState:
        doc = orjson.loads(blob)
        if not isinstance(doc, dict) or doc.get("v") != STATE_FORMAT_VERSION:
            raise StateFormatError("pattern-set state has an unsupported format version")
        state = PatternSetState()
        pos = {n: i for i, n in enumerate(self.names)}
        for name, sub in doc["k"].items():
            if name not in pos:
                raise StateFormatError(
                    f"state holds pattern {name!r} that this pattern set does not have"
                )
            i = pos[name]
            state.states[i] = state_from_doc(self.nfas[i], sub)
        if "o" in doc:
            state.early = [list(x) for x in doc["o"]]
            state.arrivals = doc["a"]
            state.watermark = -_INF if doc["w"] is None else doc["w"]
            state.max_ts = -_INF if doc["m"] is None else doc["m"]
        return state
