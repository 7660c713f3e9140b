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
    """Per-key state of a :class:`PatternSet`: the live NFA states by pattern index.

    ``watch``, ``due`` and ``next`` summarise ``states`` (derived, not serialised); every
    ``PatternSet`` method that changes ``states`` renews them, so change ``states`` only
    through the pattern set. ``watch``: per live pattern (in index order), the distinct
    quick-check conditions its runs wait on, one entry per condition,
    ``(pattern, key, fn, keys of the pattern's earlier entries)``, or None when some run is
    not in a quick-check state; ``due``: the earliest state deadline; ``next``: what
    ``next_deadline`` returns (inf for None).
    """

    __slots__ = ("arrivals", "due", "early", "max_ts", "next", "states", "watch", "watermark")

    def __init__(self) -> None:
        self.states: dict[int, NFAState] = {}
        self.early: list[list[Any]] = []
        self.arrivals = 0
        self.watermark: float = -_INF
        self.max_ts: float = -_INF
        self.watch: list[tuple[int, int, Any, tuple[int, ...]]] | None = []
        self.due: float = _INF
        self.next: float = _INF

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
        live = state.states
        one = self._one_field
        if one is None or type(event) is not dict:
            return self._process_general(state, event, timestamp)
        # ``candidates`` for the common case: one guarded field, no unguarded pattern.
        # ``hits``: the patterns whose start guards the event matches; a pattern not among
        # them cannot start a run with this event, so its start run is left out of the
        # quick check below.
        field, values = one
        try:
            hits = values.get(event.get(field))
        except TypeError:  # unhashable value: no guard can equal it
            hits = None
        if not hits:
            if not live:
                return []
            watch = state.watch
            if watch is not None and timestamp < state.due:
                return self._process_watched(state, watch, event, timestamp)
            cands = sorted(live) if len(live) > 1 else list(live)
        elif not live:
            cands = hits
        else:
            cands = sorted(set(live).union(hits))
        out: list[tuple[str, Match]] = []
        nfas = self.nfas
        for i in cands:
            nfa = nfas[i]
            st = live.get(i)
            if st is None:
                started = nfa.start_new(event, timestamp)
                if started is None:
                    continue
                st, ms = started
            elif timestamp < st.deadline:
                # ``NFA.process``'s quick check, inlined: if every run ignores the event the
                # state is unchanged (and stays live: a live state is never idle)
                quick = nfa._quick
                last = None
                skip_start = -1 if hits is not None and i in hits else nfa.start_index
                for cs in st.partial:
                    si = cs[0]
                    if si == skip_start:
                        continue  # the start run: its guard rules the event out
                    key, fn = quick[si]
                    if key is None:
                        break
                    if key != last:
                        if fn(event):
                            break
                        last = key
                else:
                    continue
                # what ``NFA.process`` does next (no time to advance), with the conditions
                # already evaluated
                cache: dict[int, bool] = {} if last is None else {last: False}
                if key is not None:
                    cache[key] = True
                ms = []
                nfa._process(st, event, timestamp, ms, cache)
            else:
                ms = nfa.process(st, event, timestamp)
            if ms:
                name = self.names[i]
                for m in ms:
                    out.append((name, m))
            if st.is_idle:
                live.pop(i, None)  # the same as a fresh state
            else:
                live[i] = st
        self._summarise(state)
        return out

    def _process_watched(
        self,
        state: PatternSetState,
        watch: list[tuple[int, int, Any, tuple[int, ...]]],
        event: dict[str, Any],
        timestamp: int,
    ) -> list[tuple[str, Match]]:
        """``process`` for an event that starts no run, before every live state's deadline:
        only the conditions in ``state.watch`` are asked, and only a pattern one of them
        holds for goes through ``NFA._process``, with the answers so far."""
        out: list[tuple[str, Match]] = []
        live = state.states
        done = -1  # the pattern last given to ``_process`` (its later entries are skipped)
        for i, key, fn, before in watch:
            if i == done or not fn(event):
                continue  # (if no entry of pattern i holds, its state is unchanged)
            done = i
            cache = dict.fromkeys(before, False)  # its earlier entries were false
            cache[key] = True
            st = live[i]
            ms: list[Match] = []
            self.nfas[i]._process(st, event, timestamp, ms, cache)
            if ms:
                name = self.names[i]
                for m in ms:
                    out.append((name, m))
            if st.is_idle:
                live.pop(i, None)  # the same as a fresh state
        if done >= 0:
            self._summarise(state)
        return out

    def _summarise(self, state: PatternSetState) -> None:
        """Renew ``state.watch``, ``state.due`` and ``state.next`` from ``state.states``."""
        live = state.states
        watch: list[tuple[int, int, Any, tuple[int, ...]]] | None = []
        due = nxt = _INF
        nfas = self.nfas
        for i in sorted(live) if len(live) > 1 else live:
            st = live[i]
            d = st.deadline
            if d < due:
                due = d
            pending = st.pending_timeouts
            if pending:
                d = min(t.timestamp for t in pending)
            if d < nxt:
                nxt = d
            if watch is None:
                continue
            nfa = nfas[i]
            quick = nfa._quick
            start = nfa.start_index
            before: tuple[int, ...] = ()
            for cs in st.partial:
                si = cs[0]
                if si == start:
                    continue  # the start run: only an event its guards match reaches it
                key, fn = quick[si]
                if key is None:
                    watch = None
                    break
                if key not in before:
                    watch.append((i, key, fn, before))
                    before = (*before, key)
        state.watch = watch
        state.due = due
        state.next = nxt

    def _process_general(
        self, state: PatternSetState, event: Any, timestamp: int
    ) -> list[tuple[str, Match]]:
        """``process`` for any event and any set: each candidate through ``NFA.process``."""
        out: list[tuple[str, Match]] = []
        live = state.states
        for i in self.candidates(state, event):
            nfa = self.nfas[i]
            st = live.get(i)
            if st is None:
                started = nfa.start_new(event, timestamp)
                if started is None:
                    continue
                st, ms = started
            else:
                ms = nfa.process(st, event, timestamp)
            name = self.names[i]
            for m in ms:
                out.append((name, m))
            self._keep(state, i, st)
        self._summarise(state)
        return out

    def advance_time(
        self, state: PatternSetState, timestamp: int
    ) -> tuple[list[tuple[str, Timeout]], list[tuple[str, Match]]]:
        timeouts: list[tuple[str, Timeout]] = []
        matches: list[tuple[str, Match]] = []
        changed = False
        for i in sorted(state.states):
            st = state.states[i]
            if timestamp < st.deadline and not st.pending_timeouts:
                continue  # nothing due: advance_time would return nothing and change nothing
            t, m = self.nfas[i].advance_time(st, timestamp)
            name = self.names[i]
            for x in t:
                timeouts.append((name, x))
            for x in m:
                matches.append((name, x))
            self._keep(state, i, st)
            changed = True
        if changed:
            self._summarise(state)
        return timeouts, matches

    def next_deadline(self, state: PatternSetState) -> float | None:
        """Earliest time at which ``advance_time`` can emit for this key, or None."""
        d = state.next  # ``NFA.next_deadline`` of every live state, kept by ``_summarise``
        return None if d == _INF else d

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
        self._summarise(state)
        return state
