"""Emitting completed matches under the after-match skip strategy, and the run cap.

Flink's ``processMatchesAccordingToSkipStrategy``: completed matches are held back while an
earlier-starting partial match is alive (for a skip strategy), then emitted in start order,
each pruning the partial and held-back matches it makes obsolete.
"""

from __future__ import annotations

from typing import Any

from cep.lookup import Tables
from cep.match import Match
from cep.state import CState, NFAState, cs_key


def _start_id(cs: CState, events: dict[int, list[Any]]) -> tuple[int, int] | None:
    return None if cs[5] is None else (cs[3], cs[5])


class Emit(Tables):
    """Match emission and the ``max_partial_matches`` cap (part of :class:`~cep.nfa.NFA`)."""

    def _skip_matches(
        self,
        state: NFAState,
        potential: list[CState],
        partial: list[CState],
        result: list[Match],
    ) -> list[CState]:
        buf = state
        events = state.events
        completed = [*state.completed, *potential]
        completed.sort(key=cs_key)
        skip = self.skip

        def start_id(cs: CState) -> tuple[int, int] | None:
            return _start_id(cs, events)

        def release(cs: CState) -> None:
            buf.release_node(cs[1], cs[2])

        holds_back = skip.is_skip_strategy
        quiet = not self._prune_may_raise
        while completed:
            m = completed[0]
            if holds_back and partial and cs_key(m) > cs_key(partial[0]):
                break
            completed.pop(0)
            if not completed and quiet and all(cs[5] is None for cs in partial):
                # nothing the strategy could prune (no other match, no started partial
                # match): ``prune`` would change nothing, so a run that shares no buffer
                # node is emitted and freed in one walk
                got = buf.pop_private(m[1], m[2])
                if got is not None:
                    result.append(Match(*got))
                    continue
            paths = buf.extract(m[1], m[2])
            ids = [
                {stage: [(events[s][1], s) for s in seqs] for stage, seqs in p.items()}
                for p in paths
            ]
            partial = skip.prune(partial, ids, start_id, release)
            completed = skip.prune(completed, ids, start_id, release)
            if paths:
                result.append(Match(*buf.materialize(paths[0])))
            buf.release_node(m[1], m[2])
        state.completed = completed if completed else ()
        return partial

    def _cap(self, state: NFAState, partial: list[CState]) -> None:
        limit = self.max_partial_matches
        n = len(partial) - 1 + len(state.completed)
        if n <= limit:
            return
        buf = state
        drop = n - limit
        # the start run sorts last; drop the most recently started runs before it
        i = len(partial) - 1
        while drop > 0 and i >= 0:
            cs = partial[i]
            if cs[5] is not None:
                buf.release_node(cs[1], cs[2])
                del partial[i]
                state.dropped_partial_matches += 1
                drop -= 1
            i -= 1
