"""The immutable automaton and its two operations, ``process`` and ``advance_time``.

This is Flink's ``NFA`` over plain Python values. All per-key data lives in the
:class:`~cep.state.NFAState` passed in; the NFA never reads a clock. The class is assembled
from one-concept parts: :mod:`cep.lookup` (the precomputed tables), :mod:`cep.step` (one event
through the runs), :mod:`cep.expiry` (deadlines and timeouts) and :mod:`cep.emit` (skip
strategies and the run cap).
"""

from __future__ import annotations

from typing import Any

from cep.match import Match, Timeout
from cep.state import _NEVER, WATCH_ALL, CState, NFAState
from cep.step import Step


class NFA(Step):
    """Compiled pattern. Immutable; share one instance across all keys and threads.

    ``NFA(states, *, window_time, window_times, skip, max_partial_matches=10_000,
    pattern=None)``; build it with :func:`cep.compile_pattern`.
    """

    # -- state -----------------------------------------------------------------------------
    def new_state(self) -> NFAState:
        """A fresh per-key state holding only the start run."""
        return NFAState(self, [self._start_run])

    def state_from_bytes(self, blob: bytes) -> NFAState:
        """Load state written by ``NFAState.to_bytes`` (any supported format version)."""
        from cep.serde import load_state

        return load_state(self, blob)

    def may_start(self, event: Any) -> bool:
        """False if ``event`` certainly leaves an idle state unchanged (cheap pre-check)."""
        spec = self.fast[self.start_index]
        return spec is None or bool(spec[1](event))

    def start_new(self, event: Any, timestamp: int) -> tuple[NFAState, list[Match]] | None:
        """``process`` on a fresh state: ``(state, matches)``, or None if the event leaves a
        fresh state unchanged (then no state is created)."""
        key, fn = self._quick[self.start_index]
        if key is None:
            st = self.new_state()
            return st, self.process(st, event, timestamp)
        if not fn(event):
            return None
        st = NFAState(self, [self._start_run])
        out: list[Match] = []
        first = self._first_take
        if first is None:
            self._process(st, event, timestamp, out, {key: True})
            return st, out
        # what ``_process`` does for the start run's TAKE into a non-final state: one new
        # run (event seq 0, version 1.0) and the start run (version 2)
        target, node, start_after = first
        st.nodes[node] = [1, [[None, (1,), 1]]]
        st.events[0] = [event, timestamp, 1]
        st.seq = 1
        st.partial = partial = [(target, node, (1, 0), timestamp, timestamp, 0), start_after]
        st.watch = WATCH_ALL
        st.deadline = self._sorted_deadline(partial)
        return st, out

    def _take_start(self, state: NFAState, cs: CState, event: Any, timestamp: int) -> None:
        """``_process`` for a state holding only its start run ``cs`` (nothing held back),
        whose condition holds for ``event``, when ``_first_take`` is set: the same runs,
        buffer entries and deadline, built directly."""
        target, (_seq0, stage), _after = self._first_take  # type: ignore[misc]
        si, version = cs[0], cs[2]
        seq = state.seq
        state.seq = seq + 1
        node = (seq, stage)
        state.nodes[node] = [1, [[None, version, 1]]]
        state.events[seq] = [event, timestamp, 1]
        state.partial = partial = [
            (target, node, (*version, 0), timestamp, timestamp, seq),
            (si, None, (*version[:-1], version[-1] + 1), -1, -1, None),
        ]
        state.watch = WATCH_ALL
        state.deadline = self._sorted_deadline(partial)

    def _watch(self, partial: list[CState]) -> tuple[Any, ...]:
        """The distinct quick-check functions of ``partial``'s runs, in run order: when none
        holds for an event, no run reacts to it. ``(_always,)`` when a run has no quick check.
        """
        quick = self._quick
        fns: list[Any] = []
        seen: list[int] = []
        for cs in partial:
            fn = quick[cs[0]][1]
            if fn is None:
                return WATCH_ALL
            if id(fn) not in seen:
                seen.append(id(fn))
                fns.append(fn)
        return tuple(fns)

    def _watch_cache(self, watch: tuple[Any, ...], fn: Any) -> dict[int, bool]:
        """The per-event condition cache after checking ``watch`` up to ``fn``, which held:
        the functions before it were false."""
        fn_keys = self._fn_keys
        cache: dict[int, bool] = {}
        for f in watch:
            if f is fn:
                break
            for k in fn_keys[id(f)]:
                cache[k] = False
        for k in fn_keys.get(id(fn), ()):
            cache[k] = True
        return cache

    def next_deadline(self, state: NFAState) -> float | None:
        """Earliest time at which ``advance_time`` can emit for this state, or None."""
        if state.pending_timeouts:
            return min(t.timestamp for t in state.pending_timeouts)
        d = state.deadline
        return None if d == _NEVER else d

    def describe(self, state: NFAState) -> list[dict[str, Any]]:
        """Partial matches of a key, for display: one dict per run (oldest first).

        ``stage``: stage of the last event taken; ``waiting_for``: stages that can take the next
        event; ``events``: stage -> events so far; ``started_at``/``last_at``: timestamps of the
        first/last event; ``expires_at``: when the window ends (None without a window);
        ``held``: a completed match held back by the skip strategy.
        """
        out: list[dict[str, Any]] = []
        runs = [(cs, False) for cs in state.partial if cs[5] is not None]
        runs += [(cs, True) for cs in state.completed]
        for cs, held in runs:
            paths = state.extract(cs[1], cs[2])
            events = state.materialize(paths[0])[0] if paths else {}
            expires: float | None = None
            if self.window_time > 0:
                expires = cs[3] + self.window_time
            pw = self.win_prev[cs[0]]
            if pw is not None:
                t = cs[4] + pw
                expires = t if expires is None else min(expires, t)
            out.append(
                {
                    "stage": cs[1][1] if cs[1] is not None else None,
                    "waiting_for": [] if held else self._waiting_for[cs[0]],
                    "events": events,
                    "started_at": cs[3],
                    "last_at": cs[4],
                    "expires_at": expires,
                    "held": held,
                }
            )
        return out

    # -- processing ------------------------------------------------------------------------
    def process(self, state: NFAState, event: Any, timestamp: int) -> list[Match]:
        """Feed one event; returns the matches it completes.

        Time first advances to ``timestamp`` (as Flink's operator does before each event):
        matches completed by that (absence matches) are returned here; timeouts it produces are
        kept and returned by the next ``advance_time``.
        """
        out: list[Match] = []
        if timestamp >= state.deadline:
            timeouts, matches = self._advance(state, timestamp)
            if timeouts:
                state.pending_timeouts = [*state.pending_timeouts, *timeouts]
            out.extend(matches)
        # Quick check: if every run is fast and ignores this event, nothing changes.
        quick = self._quick
        last = None  # key of the last condition found false
        for cs in state.partial:
            key, fn = quick[cs[0]]
            if key is None:
                break
            if key != last:
                if fn(event):
                    break
                last = key
        else:
            return out
        if (
            cs[5] is None
            and self._first_take is not None
            and len(state.partial) == 1
            and not state.completed
        ):
            self._take_start(state, cs, event, timestamp)  # only the start run, and it takes
            return out
        cache: dict[int, bool] = {} if last is None else {last: False}
        if key is not None:
            cache[key] = True
        self._process(state, event, timestamp, out, cache)
        return out

    def advance_time(self, state: NFAState, timestamp: int) -> tuple[list[Timeout], list[Match]]:
        """Expire runs whose window ended by ``timestamp``: (timeouts, absence matches)."""
        pending = state.pending_timeouts
        if timestamp < state.deadline:
            if pending:
                state.pending_timeouts = ()
                return list(pending), []
            return [], []
        more, matches = self._advance(state, timestamp)
        if pending:
            state.pending_timeouts = ()
            return [*pending, *more], matches
        return more, matches

    def __repr__(self) -> str:
        return f"NFA(states={self.names}, window={self.window_time}, skip={self.skip!r})"
