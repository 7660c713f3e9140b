"""The per-event step of a *plain chain* pattern, built for :class:`~cep.keyed.KeyedRunner`.

A plain chain is the commonest pattern shape: stages of one event each joined by
``followed_by`` (``A followed_by B followed_by C``), simple conditions, ``no_skip``, and at
most a whole-pattern ``within``. Every run of such a pattern waits in a *fast* state (one
``TAKE(c)`` and a self ``IGNORE(not c)``): an event either leaves it as it is or moves it one
stage on (the start run also starts a new run), nothing branches and nothing is held back.
:func:`chain_step` is ``NFA._process`` for that case with the lookups of the general walk
resolved once per pattern: the same runs, versions, buffer entries, matches and deadline, so
states stay interchangeable with the general path (``tests/unit/cep/test_engine_chain.py``).
:func:`chain_tables` says whether a compiled pattern qualifies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from heapq import heappush
from typing import Any

from cep.deadlines import DeadlineHeap
from cep.match import Match, Timeout
from cep.nfa import NFA
from cep.state import _NEVER, CState, NFAState, _always, cs_key

_INF = float("inf")
_ZERO = (0,)
_NOTHING: tuple[()] = ()

#: per NFA state index: (condition's cache key, condition, take target, stage of the node,
#: target is final), or None for the final state
ChainRow = tuple[int, Callable[[Any], Any], int, str, bool] | None


def chain_tables(nfa: NFA) -> list[ChainRow] | None:
    """Per NFA state, what a run waiting there does with an event, if ``nfa`` is a plain
    chain (see the module docstring); None if it is not."""
    if nfa.skip.is_skip_strategy or nfa._prune_may_raise:
        return None
    if nfa.has_windows and not nfa._first_run_deadline:
        return None  # a stage window: deadlines are not the first run's
    if sum(nfa.is_start) != 1:
        return None
    rows: list[ChainRow] = []
    for i in range(len(nfa.graph)):
        if nfa.is_final[i]:
            rows.append(None)
            continue
        spec, take, quick = nfa.fast[i], nfa.fast_take[i], nfa._quick[i]
        if nfa.is_stop[i] or nfa.is_pending[i] or spec is None or take is None:
            return None
        src, target, also_ignore, inline = take
        if quick[0] is None or also_ignore or not inline or src != i:
            return None
        if not (nfa.is_final[target] or nfa.fast[target] is not None):
            return None
        rows.append((spec[0], spec[1], target, nfa.stage[src], nfa.is_final[target]))
    return rows


class ChainProcess:
    """``KeyedRunner.process`` for a plain chain: ``ChainProcess(nfa, rows, states, heap,
    fallback)`` is called as ``process(key, event, ts)``; ``fallback`` (the runner's general
    ``process``) takes the events this one does not (time to advance first, a state at the
    cap or holding back matches).

    A key's ``watch`` is the tuple of the distinct conditions its runs wait on, one canonical
    tuple per set of occupied NFA states (a bit mask), so the quick check is one loop over it
    and a changed state gets its new watch from the mask built while its runs are rebuilt.
    """

    def __init__(
        self,
        nfa: NFA,
        rows: list[ChainRow],
        states: Any,
        heap: DeadlineHeap,
        fallback: Callable[[Any, Any, int], Any],
    ) -> None:
        self.nfa = nfa
        self.rows = rows
        self._by_mask: dict[int, tuple[Any, ...]] = {}
        # id(watch) -> per NFA state index, the position of its condition in the watch (-1)
        self._positions: dict[int, tuple[int, ...]] = {}
        self._states = states
        self._heap = heap
        self._bit = [1 << i if row is not None else 0 for i, row in enumerate(rows)]
        self.process = self._build(states, heap, fallback)

    def watch(self, mask: int) -> tuple[Any, ...]:
        """The canonical watch of the NFA states in ``mask``: their distinct conditions."""
        got = self._by_mask.get(mask)
        if got is None:
            fns: list[Any] = []
            positions = [-1] * len(self.rows)
            for si, row in enumerate(self.rows):
                if row is None or not mask >> si & 1:
                    continue
                fn = row[1]
                for j, f in enumerate(fns):
                    if f is fn:
                        positions[si] = j
                        break
                else:
                    positions[si] = len(fns)
                    fns.append(fn)
            got = self._by_mask[mask] = tuple(fns)
            self._positions[id(got)] = tuple(positions)
        return got

    def watch_of(self, partial: list[CState]) -> tuple[Any, ...]:
        mask = 0
        for cs in partial:
            mask |= 1 << cs[0]
        return self.watch(mask)

    def advance_time(self, timestamp: int) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """``KeyedRunner.advance_time``: a due key's expired runs are a prefix of its runs
        (sorted by first event, one whole-pattern window), each a ``Timeout``; a key holding
        kept timeouts or held-back matches goes through ``NFA.advance_time``."""
        timeouts: list[tuple[Any, Any]] = []
        matches: list[tuple[Any, Any]] = []
        heap = self._heap
        states = self._states
        nfa = self.nfa
        w = nfa.window_time
        bit = self._bit
        by_mask = self._by_mask
        watch = self.watch
        schedule = heap.schedule
        for key in heap.pop_due(timestamp):
            st = states[key]
            if st.pending_timeouts or st.completed or timestamp < st.deadline:
                tos, ms = nfa.advance_time(st, timestamp)
                for t in tos:
                    timeouts.append((key, t))
                for m in ms:
                    matches.append((key, m))
                schedule(key, nfa.next_deadline(st))
                continue
            # ``NFA._advance`` for runs sorted by first event, none in a pending state
            partial = st.partial
            i = 0
            for cs in partial:
                if cs[5] is None or timestamp - cs[3] < w:
                    break
                i += 1
                got = st.pop_private(cs[1], cs[2])
                if got is None:
                    got = st.pop_run(cs[1], cs[2])
                timeouts.append((key, Timeout(got[0], cs[3] + w, got[1])))
            st.partial = partial = partial[i:]
            mask = 0
            for cs in partial:
                mask |= bit[cs[0]]
            got_w = by_mask.get(mask)
            st.watch = got_w if got_w is not None else watch(mask)
            first = partial[0] if partial else None
            if first is None or first[5] is None:
                st.deadline = _NEVER
            else:
                st.deadline = d = first[3] + w
                schedule(key, d)
        return timeouts, matches

    def _build(
        self, states: Any, heap: DeadlineHeap, fallback: Callable[[Any, Any, int], Any]
    ) -> Callable[[Any, Any, int], Any]:
        nfa = self.nfa
        rows = self.rows
        get = states.get
        start_run = nfa._start_run
        watch = self.watch
        by_mask = self._by_mask
        watch_of = self.watch_of
        positions_of = self._positions
        current = heap.current
        scheduled = current.get
        cap = nfa.max_partial_matches
        start = nfa.start_index
        windowed = nfa.has_windows
        window = nfa.window_time
        nstates = len(rows)
        bit = [1 << i if rows[i] is not None else 0 for i in range(nstates)]
        idle_watch = watch(bit[start])
        step = nfa._process
        watch_cache = nfa._watch_cache
        first_take: tuple[int, str] | None = None
        after_start = None
        if nfa._first_take is not None:
            first_take = (nfa._first_take[0], nfa._first_take[1][1])
            after_start = watch(bit[start] | bit[first_take[0]])

        def process(key: Any, event: Any, ts: int) -> Sequence[Any]:
            st = get(key)
            if st is None:
                st = states[key] = NFAState(nfa, [start_run])  # ``nfa.new_state()``
                st.watch = idle_watch
            if ts >= st.deadline:
                return fallback(key, event, ts)
            w = st.watch
            for fn in w:
                if fn(event):
                    break
            else:
                return _NOTHING
            if fn is _always:  # the watch is not known: from the runs
                w = st.watch = watch_of(st.partial)
                for fn in w:
                    if fn(event):
                        break
                else:
                    return _NOTHING
            out: list[Match] = []
            partial = st.partial
            if len(partial) > cap or st.completed:
                # the cap may drop runs, or matches are held back: the general step
                step(st, event, ts, out, watch_cache(w, fn))
            elif len(partial) == 1 and first_take is not None and partial[0][5] is None:
                # only the start run, and it takes the event: ``NFA._take_start``
                target, stage0 = first_take
                _si, _node, version, _sts, _pts, _sseq = partial[0]
                seq = st.seq
                st.seq = seq + 1
                node = (seq, stage0)
                st.nodes[node] = [1, [[None, version, 1]]]
                st.events[seq] = [event, ts, 1]
                st.partial = [
                    (target, node, version + _ZERO, ts, ts, seq),
                    (start, None, (*version[:-1], version[-1] + 1), -1, -1, None),
                ]
                st.watch = after_start
                st.deadline = ts + window if windowed else _NEVER
            else:
                # the condition results so far, by position in the watch: False before ``fn``
                positions = positions_of.get(id(w))
                if positions is None:  # another runner's watch: this runner's own
                    w = st.watch = watch_of(partial)
                    positions = positions_of[id(w)]
                    known: list[bool | None] = [None] * len(w)
                else:
                    k = w.index(fn)
                    known = [False] * k
                    known.append(True)
                    if k + 1 < len(w):
                        known.extend([None] * (len(w) - k - 1))
                _step(st, event, ts, w, positions, known, out)
            pending = st.pending_timeouts
            d = min(t.timestamp for t in pending) if pending else st.deadline
            if d != scheduled(key, _INF):
                if d == _INF:
                    del current[key]
                else:  # ``heap.schedule(key, d)``
                    current[key] = d
                    heappush(heap._heap, (d, key))
                    if len(heap._heap) > 4 * len(current) + 1024:
                        heap.compact()
            return out

        def _step(
            st: NFAState,
            event: Any,
            ts: int,
            w: tuple[Any, ...],
            positions: tuple[int, ...],
            known: list[bool | None],
            out: list[Match],
        ) -> None:
            nodes = st.nodes
            partial = st.partial
            last = partial[-1]
            new_partial: list[CState] = []
            potential: list[CState] | None = None
            unsorted = False
            seq = -1
            mask = 0
            for cs in partial:
                si = cs[0]
                p = positions[si]
                r = known[p]
                if r is None:
                    r = known[p] = bool(w[p](event))
                if not r:
                    new_partial.append(cs)
                    mask |= bit[si]
                    continue
                _key, _fn, target, stage, final = rows[si]  # type: ignore[misc]
                _si, prev_node, version, start_ts, _prev_ts, start_seq = cs
                starts = si == start
                if starts and not unsorted:
                    if cs is not last:
                        unsorted = True
                    elif new_partial:
                        prev = new_partial[-1]
                        unsorted = prev[5] is None or prev[3] > ts
                if seq < 0:
                    seq = st.seq
                    st.seq = seq + 1
                next_ver = version + _ZERO
                node = (seq, stage)
                entry = nodes.get(node)
                if entry is None:
                    nodes[node] = [1, [[prev_node, version, 1]]]
                    evs = st.events
                    ev = evs.get(seq)
                    if ev is None:
                        evs[seq] = [event, ts, 1]
                    else:
                        ev[2] += 1
                else:
                    entry[1].append([prev_node, version, 0])
                    st.lock_node(node, next_ver)
                if starts:
                    n = (target, node, next_ver, ts, ts, seq)
                else:
                    n = (target, node, next_ver, start_ts, ts, start_seq)
                if final:
                    if potential is None:
                        potential = [n]
                    else:
                        potential.append(n)
                else:
                    new_partial.append(n)
                    mask |= bit[target]
                if starts:
                    new_partial.append((si, None, (*version[:-1], version[-1] + 1), -1, -1, None))
                    mask |= bit[si]
            if unsorted:
                new_partial.sort(key=cs_key)
            if potential is not None:
                if len(potential) > 1:
                    potential.sort(key=cs_key)
                for m in potential:
                    got = st.pop_private(m[1], m[2])
                    if got is None:
                        paths = st.extract(m[1], m[2])
                        if paths:
                            out.append(Match(*st.materialize(paths[0])))
                        st.release_node(m[1], m[2])
                    else:
                        out.append(Match(*got))
            st.partial = new_partial
            w = by_mask.get(mask)
            st.watch = w if w is not None else watch(mask)
            first = new_partial[0] if new_partial else None
            if first is None or first[5] is None or not windowed:
                st.deadline = _NEVER
            else:
                st.deadline = first[3] + window

        return process
