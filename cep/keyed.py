"""Per-key states of one engine and the heap of their deadlines: the loop every caller writes.

A caller of the engine keeps a state per key, feeds each event to its key's state, keeps each
key's ``next_deadline`` in a heap and, on a clock tick, advances only the keys that are due
(nothing scans all keys). :class:`KeyedRunner` is that loop, for an :class:`~cep.nfa.NFA` or a
:class:`~cep.patternset.PatternSet`::

    runner = KeyedRunner(nfa)                    # or KeyedRunner(pattern_set)
    for key, event, ts in stream:
        for m in runner.process(key, event, ts):  # the key's matches
            ...
        if tick:
            timeouts, matches = runner.advance_time(now)  # [(key, Timeout)], [(key, Match)]

The results are exactly those of the engine's own ``process``/``advance_time`` on the same
states (the states are the engine's, ``runner.states[key]``, serialisable as usual). For an
``NFA``, an event that no run of its key reacts to is answered by the runner itself (the
engine's quick check over the state's ``watch``, nothing allocated), and the deadline heap is
touched only when an event changed the key's state. A plain chain pattern (:mod:`cep.chain`)
takes its events and expiry through a step built for that shape, with the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, MutableMapping, Sequence
from typing import Any

from cep.chain import ChainProcess, chain_tables
from cep.deadlines import DeadlineHeap
from cep.nfa import NFA
from cep.patternset import PatternSet
from cep.state import WATCH_ALL, _always

_INF = float("inf")
_NOTHING: tuple[()] = ()


class KeyedRunner:
    """``KeyedRunner(engine, states=None)``: ``engine`` an ``NFA`` or a ``PatternSet``;
    ``states`` the mapping of key -> state to use (a new dict by default; states already in it
    are scheduled). Change a state only through the runner, or call :meth:`reschedule` after.

    ``process(key, event, ts)``: the engine's ``process`` on the key's state (a fresh one for a
    new key); returns the matches (``NFA``: ``Match``; ``PatternSet``: ``(name, Match)``).
    """

    def __init__(
        self, engine: NFA | PatternSet, states: MutableMapping[Hashable, Any] | None = None
    ) -> None:
        if not isinstance(engine, NFA | PatternSet):
            raise TypeError(
                f"KeyedRunner runs an NFA or a PatternSet, got {type(engine).__name__}: "
                "compile the pattern with cep.compile_pattern first"
            )
        self.engine = engine
        self.states: MutableMapping[Hashable, Any] = {} if states is None else states
        self._deadlines = DeadlineHeap()
        if isinstance(engine, NFA):
            self.process: Callable[[Hashable, Any, int], Sequence[Any]] = self._nfa_process()
            rows = chain_tables(engine)
            #: the plain-chain step (``cep.chain``) when the pattern is one, else None
            self._chain: ChainProcess | None = None
            if rows is not None:
                chain = ChainProcess(engine, rows, self.states, self._deadlines, self.process)
                self.process = chain.process
                self._chain = chain
                self.advance_time = chain.advance_time  # type: ignore[method-assign]
        else:
            self._chain = None
            self.process = self._set_process()
        for key in list(self.states):
            self.reschedule(key)

    # -- per event ---------------------------------------------------------------------------
    def _nfa_process(self) -> Callable[[Hashable, Any, int], Sequence[Any]]:
        """``process`` for an ``NFA``: ``NFA.process``'s quick check over the state's watch
        (the distinct conditions its runs wait on); the deadline heap is looked at only after
        an event that changed the state. A plain chain (``cep.chain``) takes its events
        through ``chain_step``."""
        nfa = self.engine
        assert isinstance(nfa, NFA)
        states = self.states
        get = states.get
        new = nfa.new_state
        watch_of = nfa._watch
        watch_cache = nfa._watch_cache
        step = nfa._process
        full = nfa.process
        first_take = nfa._first_take is not None
        take_start = nfa._take_start
        scheduled = self._deadlines.current.get
        schedule = self._deadlines.schedule

        def process(key: Hashable, event: Any, ts: int) -> Sequence[Any]:
            out: list[Any]
            st = get(key)
            if st is None:
                st = states[key] = new()
            if ts < st.deadline:
                # ``NFA.process`` with no time to advance: if no run reacts to the event,
                # nothing changes (and the key's deadline stays as scheduled)
                w = st.watch
                for fn in w:
                    if fn(event):
                        break
                else:
                    return _NOTHING
                if fn is _always:  # the watch is not known: from the runs
                    w = st.watch = watch_of(st.partial)
                    if w is not WATCH_ALL:
                        for fn in w:
                            if fn(event):
                                break
                        else:
                            return _NOTHING
                out = []
                partial = st.partial
                if fn is _always:
                    step(st, event, ts, out, {})
                elif (
                    first_take and len(partial) == 1 and partial[0][5] is None and not st.completed
                ):
                    # only the start run, and it takes the event: ``_process``'s result, built
                    # directly (as ``NFA.start_new`` does for a fresh state)
                    take_start(st, partial[0], event, ts)
                else:
                    step(st, event, ts, out, watch_cache(w, fn))
            else:
                out = full(st, event, ts)
            # ``NFA.next_deadline`` (inf for None) into the heap, if it moved
            pending = st.pending_timeouts
            d = min(t.timestamp for t in pending) if pending else st.deadline
            if d != scheduled(key, _INF):
                schedule(key, None if d == _INF else d)
            return out

        return process

    def _set_process(self) -> Callable[[Hashable, Any, int], Sequence[Any]]:
        """``process`` for a ``PatternSet``: the set keeps its next deadline in the state."""
        pset = self.engine
        states = self.states
        get = states.get
        new = pset.new_state
        full = pset.process
        schedule = self._deadlines.schedule

        def process(key: Hashable, event: Any, ts: int) -> Sequence[Any]:
            st = get(key)
            if st is None:
                st = states[key] = new()
            before = st.next  # ``PatternSet.next_deadline``, inf for None: as scheduled
            out = full(st, event, ts)
            d = st.next
            if d != before:
                schedule(key, None if d == _INF else d)
            return out

        return process

    # -- time --------------------------------------------------------------------------------
    def advance_time(self, timestamp: int) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """Advance every key whose deadline is <= ``timestamp``:
        ``([(key, timeout)], [(key, match)])`` in deadline order (the engine's types)."""
        timeouts: list[tuple[Any, Any]] = []
        matches: list[tuple[Any, Any]] = []
        deadlines = self._deadlines
        states = self.states
        advance = self.engine.advance_time
        next_deadline = self.engine.next_deadline
        for key in deadlines.pop_due(timestamp):
            st = states[key]
            tos, ms = advance(st, timestamp)
            for t in tos:
                timeouts.append((key, t))
            for m in ms:
                matches.append((key, m))
            deadlines.schedule(key, next_deadline(st))
        return timeouts, matches

    def next_deadline(self) -> float | None:
        """Earliest deadline of any key (None if no key has one): when ``advance_time`` can
        next produce something."""
        return self._deadlines.earliest()

    def reschedule(self, key: Hashable) -> None:
        """Put ``states[key]``'s deadline in the heap (after changing or loading that state
        outside the runner); a key no longer in ``states`` is unscheduled."""
        st = self.states.get(key)
        self._deadlines.schedule(key, None if st is None else self.engine.next_deadline(st))

    def __repr__(self) -> str:
        return f"KeyedRunner({self.engine!r}, keys={len(self.states)})"
