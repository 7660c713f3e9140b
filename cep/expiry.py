"""Time: deadlines of a key's runs and their expiry (Flink's ``advanceTime``).

A run expires when its whole-pattern window (first to last event) or its stage's
previous-to-current window ends: it becomes a :class:`~cep.match.Timeout`, or a match when it
waits in the *pending* state of a trailing ``not_followed_by``.
"""

from __future__ import annotations

from cep.emit import Emit
from cep.match import Match, Timeout
from cep.state import _NEVER, WATCH_ALL, CState, NFAState, cs_key


class Expiry(Emit):
    """Deadlines and expiry of runs (part of :class:`~cep.nfa.NFA`)."""

    def _sorted_deadline(self, partial: list[CState]) -> float:
        """``_deadline`` of runs known to be sorted by ``cs_key``."""
        if self._first_run_deadline:
            if partial:
                cs = partial[0]
                if cs[5] is not None:
                    return cs[3] + self.window_time
            return _NEVER
        return self._deadline(partial)

    def _deadline(self, partial: list[CState]) -> float:
        if not self.has_windows:
            return _NEVER
        w = self.window_time
        win_prev = self.win_prev
        d = _NEVER
        for cs in partial:
            if cs[5] is None:
                continue
            if w > 0:
                t = cs[3] + w
                if t < d:
                    d = t
            pw = win_prev[cs[0]]
            if pw is not None:
                t = cs[4] + pw
                if t < d:
                    d = t
        return d

    def _advance(self, state: NFAState, ts: int) -> tuple[list[Timeout], list[Match]]:
        buf = state
        w = self.window_time
        timeouts: list[Timeout] = []
        new_partial: list[CState] = []
        potential: list[CState] = []
        if self._first_run_deadline:
            # runs are sorted by first event: the expired ones are a prefix
            partial = state.partial
            is_pending = self.is_pending
            pop_private = buf.pop_private
            i = 0
            for cs in partial:
                if cs[5] is None or ts - cs[3] < w:
                    break
                i += 1
                if is_pending[cs[0]]:
                    potential.append(cs)
                    continue
                got = pop_private(cs[1], cs[2])  # ``pop_run``'s common case, without its call
                if got is None:
                    got = buf.pop_run(cs[1], cs[2])
                timeouts.append(Timeout(got[0], cs[3] + w, got[1]))
            new_partial = partial[i:]
        else:
            self._advance_scan(state, ts, timeouts, new_partial, potential)
        result: list[Match] = []
        if potential or state.completed:
            potential.sort(key=cs_key)
            new_partial = self._skip_matches(state, potential, new_partial, result)
        state.partial = new_partial
        state.watch = WATCH_ALL
        state.deadline = self._sorted_deadline(new_partial)
        return timeouts, result

    def _advance_scan(
        self,
        state: NFAState,
        ts: int,
        timeouts: list[Timeout],
        new_partial: list[CState],
        potential: list[CState],
    ) -> None:
        buf = state
        w = self.window_time
        for cs in state.partial:
            if cs[5] is None:
                new_partial.append(cs)
                continue
            pw = self.win_prev[cs[0]]
            by_prev = pw is not None and pw > 0 and ts - cs[4] >= pw
            by_first = w > 0 and ts - cs[3] >= w
            if not (by_prev or by_first):
                new_partial.append(cs)
                continue
            if self.is_pending[cs[0]]:
                potential.append(cs)
                continue
            got = buf.pop_run(cs[1], cs[2])
            at = cs[4] + pw if by_prev and pw is not None else cs[3] + w
            timeouts.append(Timeout(got[0], at, got[1]))
