"""The immutable automaton and its two operations, ``process`` and ``advance_time``.

This is Flink's ``NFA`` (``doProcess``, ``computeNextStates``, ``createDecisionGraph``,
``advanceTime``, ``processMatchesAccordingToSkipStrategy``) over plain Python values. All per-key
data lives in the :class:`~cep.state.NFAState` passed in; the NFA never reads a clock.

Hot path: a state whose only edges are ``TAKE(c)`` and a self ``IGNORE`` (``not c`` or true)
with a simple ``c`` is *fast*: when ``c(event)`` is false its run is unchanged (Flink would
re-create the same run with the same version and lock counts), so nothing is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cep import conditions as c
from cep.buffer import NodeId, SharedBuffer, Version
from cep.graph import IGNORE, PROCEED, TAKE, State
from cep.match import ConditionContext, Match, Timeout
from cep.skip import SkipStrategy
from cep.state import _NEVER, CState, NFAState, cs_key


def _increase(v: Version, n: int) -> Version:
    return v if n == 0 else (*v[:-1], v[-1] + n)


def _calc_self(ignores: int, takes: int) -> int:
    return 0 if ignores == 0 and takes == 0 else ignores + max(1, takes)


def _start_id(cs: CState, events: dict[int, list[Any]]) -> tuple[int, int] | None:
    return None if cs[5] is None else (cs[3], cs[5])


class NFA:
    """Compiled pattern. Immutable; share one instance across all keys and threads."""

    def __init__(
        self,
        states: Sequence[State],
        *,
        window_time: int,
        window_times: dict[str, int],
        skip: SkipStrategy,
        max_partial_matches: int = 10_000,
        pattern: Any = None,
    ) -> None:
        self.graph = list(states)
        self.names = [s.name for s in self.graph]
        self.index = {s.name: i for i, s in enumerate(self.graph)}
        self.stage = [s.stage for s in self.graph]
        self.is_start = [s.is_start for s in self.graph]
        self.is_final = [s.is_final for s in self.graph]
        self.is_stop = [s.is_stop for s in self.graph]
        self.is_pending = [s.is_pending for s in self.graph]
        self.start_index = self.is_start.index(True)
        self._start_run: CState = (self.start_index, None, (1,), -1, -1, None)
        self.window_time = window_time
        self.window_times = dict(window_times)
        self.win_prev: list[int | None] = [window_times.get(n) for n in self.names]
        self.has_windows = window_time > 0 or bool(window_times)
        # only a whole-pattern window: runs are sorted by first event, so the earliest
        # deadline is the first run's (O(1) instead of a scan)
        self._first_run_deadline = window_time > 0 and all(w is None for w in self.win_prev)
        self.skip = skip
        self.max_partial_matches = max_partial_matches
        self.pattern = pattern
        # transition rows: (action, source, target, fn(e, ctx), simple fn, cache key, negated)
        # cache key: -1 = always true; None = iterative; else id of the (non-negated) condition,
        # whose value is computed once per event and shared by all runs.
        self.trans: list[list[tuple[int, int, int, Any, Any, int | None, bool]]] = []
        for s in self.graph:
            row = []
            for t in s.transitions:
                cond = t.cond
                neg = False
                if cond.op == "not" and cond.args[0].is_simple:
                    cond, neg = cond.args[0], True
                if cond.op == "true" and not neg:
                    key: int | None = -1
                    simple = None
                elif cond.is_simple:
                    key, simple = id(cond), c.compile_simple(cond)
                else:
                    key, simple, neg = None, None, False
                row.append(
                    (
                        t.action,
                        self.index[t.source.name],
                        self.index[t.target.name],
                        c.compile_cond(t.cond),
                        simple,
                        key,
                        neg,
                    )
                )
            self.trans.append(row)
        self.fast: list[tuple[int, Any, bool] | None] = [
            self._fast_spec(i) for i in range(len(self.graph))
        ]
        self.fast_take = [self._fast_take_spec(i) for i in range(len(self.graph))]
        # per state: (cache key, fn) if a run waiting there is unchanged whenever ``fn(event)``
        # is false (fast and ignoring); else (None, None). Drives the per-event quick check.
        self._quick: list[tuple[int | None, Any]] = [
            (f[0], f[1]) if f is not None and f[2] else (None, None) for f in self.fast
        ]
        self.stage_names = list(dict.fromkeys(s.stage for s in self.graph))
        self.start_guards = self._start_guards()
        self._waiting_for = [self._waiting_for_stages(i) for i in range(len(self.graph))]

    def _start_guards(self) -> frozenset[tuple[str, Any]] | None:
        """(field, value) pairs of which an event must match one to change an idle state."""
        start = self.graph[self.start_index]
        found: set[tuple[str, Any]] = set()
        seen: set[int] = set()
        stack = [start]
        while stack:
            s = stack.pop()
            if id(s) in seen:
                continue
            seen.add(id(s))
            for t in s.transitions:
                if t.action == PROCEED:
                    stack.append(t.target)
                elif t.action == IGNORE:
                    if t.target is not start:
                        return None
                else:
                    g = c.guards(t.cond)
                    if g is None:
                        return None
                    found |= g
        return frozenset(found)

    def _fast_spec(self, i: int) -> tuple[int, Any, bool] | None:
        s = self.graph[i]
        takes = [t for t in s.transitions if t.action == TAKE]
        others = [t for t in s.transitions if t.action != TAKE]
        if len(takes) != 1 or not takes[0].cond.is_simple:
            return None
        take = takes[0].cond
        self_ignore = False
        for t in others:
            if t.action != IGNORE or t.target is not s:
                return None
            ok = t.cond.op == "true" or (t.cond.op == "not" and t.cond.args[0] is take)
            if not ok:
                return None
            self_ignore = True
        return (id(take), c.compile_simple(take), self_ignore or s.is_start)

    def _fast_take_spec(self, i: int) -> tuple[int, int, bool, bool] | None:
        """For a fast state: (source, target, ignores-also-when-taking, target has PROCEED)."""
        if self.fast[i] is None:
            return None
        s = self.graph[i]
        take = next(t for t in s.transitions if t.action == TAKE)
        also_ignore = any(t.action == IGNORE and t.cond.op == "true" for t in s.transitions)
        target = self.index[take.target.name]
        has_proceed = any(t.action == PROCEED for t in take.target.transitions)
        return (self.index[take.source.name], target, also_ignore, has_proceed)

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
        self._process(st, event, timestamp, out, {key: True})
        return st, out

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

    def _waiting_for_stages(self, i: int) -> list[str]:
        found: list[str] = []
        seen: set[int] = set()
        stack = [i]
        while stack:
            cur = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            for action, src, target, *_rest in self.trans[cur]:
                if action == PROCEED:
                    stack.append(target)
                elif action == TAKE and not self.is_stop[target]:
                    stage = self.stage[src]
                    if stage not in found:
                        found.append(stage)
        return found

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

    def _process(
        self, state: NFAState, event: Any, ts: int, result: list[Match], cache: dict[int, bool]
    ) -> None:
        fast = self.fast
        is_final, is_stop, is_start = self.is_final, self.is_stop, self.is_start
        buf = state
        seqbox: list[int] = []
        new_partial: list[CState] = []
        potential: list[CState] = []
        changed = False
        # Runs come sorted by (first event, arrival) and every run leaves a non-start state
        # with its own sort key, so the result stays sorted unless a start-state run (which
        # starts new runs at ``ts``) is not the last run or ``ts`` is older than a kept run.
        partial = state.partial
        last = partial[-1] if partial else None
        unsorted = False
        for cs in partial:
            spec = fast[cs[0]]
            if spec is not None:
                r = cache.get(spec[0])
                if r is None:
                    r = cache[spec[0]] = bool(spec[1](event))
                if not r:
                    if spec[2]:
                        new_partial.append(cs)
                    else:
                        buf.release_node(cs[1], cs[2])
                        changed = True
                    continue
            changed = True
            if is_start[cs[0]] and not unsorted:
                if cs is not last:
                    unsorted = True
                elif new_partial:
                    prev = new_partial[-1]
                    unsorted = prev[5] is None or prev[3] > ts
            nexts = (
                self._take_fast(state, cs, event, ts, seqbox, cache)
                if spec is not None
                else self._compute_next(state, cs, event, ts, seqbox, cache)
            )
            if len(nexts) == 1:
                n = nexts[0]
                t = n[0]
                if is_final[t]:
                    potential.append(n)
                elif is_stop[t]:
                    buf.release_node(n[1], n[2])
                else:
                    new_partial.append(n)
                continue
            retain: list[CState] = []
            discard = False
            for n in nexts:
                t = n[0]
                if is_final[t]:
                    potential.append(n)
                elif is_stop[t]:
                    discard = True
                    buf.release_node(n[1], n[2])
                else:
                    retain.append(n)
            if discard:
                for n in retain:
                    buf.release_node(n[1], n[2])
            else:
                new_partial.extend(retain)
        if not changed:
            return
        if unsorted:
            new_partial.sort(key=cs_key)
        if potential or state.completed:
            potential.sort(key=cs_key)
            if self.skip.is_skip_strategy:
                # also releases held-back matches once no earlier partial match is left
                new_partial = self._skip_matches(state, potential, new_partial, result)
            else:
                for m in potential:
                    paths = buf.extract(m[1], m[2])
                    if paths:
                        result.append(Match(*buf.materialize(paths[0])))
                    buf.release_node(m[1], m[2])
        if len(new_partial) + len(state.completed) > self.max_partial_matches + 1:
            self._cap(state, new_partial)
        state.partial = new_partial
        state.deadline = self._sorted_deadline(new_partial)

    def _compute_next(
        self,
        state: NFAState,
        cs: CState,
        event: Any,
        ts: int,
        seqbox: list[int],
        cache: dict[int, bool],
    ) -> list[CState]:
        si, prev_node, version, start_ts, prev_ts, start_seq = cs
        buf = state
        trans = self.trans
        ctx: ConditionContext | None = None
        edges: list[tuple[int, int, int]] = []
        takes = ignores = 0
        stack = [si]
        while stack:
            cur = stack.pop()
            for action, src, target, fn, simple, key, neg in trans[cur]:
                if key is None:
                    if ctx is None:
                        ctx = ConditionContext(buf, prev_node, version, ts)
                    ok = fn(event, ctx)
                elif key == -1:
                    ok = True
                else:
                    r = cache.get(key)
                    if r is None:
                        r = cache[key] = bool(simple(event))
                    ok = not r if neg else r
                if not ok:
                    continue
                if action == PROCEED:
                    stack.append(target)
                else:
                    if action == IGNORE:
                        if target != si:
                            ignores += 1
                    else:
                        takes += 1
                    edges.append((action, src, target))

        take_to_visit = max(0, takes - 1)
        ignore_to_visit = ignores
        take_to_skip = take_to_visit
        is_start = self.is_start[si]
        out: list[CState] = []
        for action, src, target in edges:
            if action == IGNORE:
                if is_start:
                    continue
                if target == si:
                    ver = _increase(version, _calc_self(ignores, takes))
                else:
                    ver = (*_increase(version, take_to_skip + ignore_to_visit), 0)
                    ignore_to_visit -= 1
                out.append((target, prev_node, ver, start_ts, prev_ts, start_seq))
                if prev_node is not None:
                    buf.lock_node(prev_node, ver)
            else:
                cur_ver = _increase(version, take_to_visit)
                next_ver = (*cur_ver, 0)
                take_to_visit -= 1
                if not seqbox:
                    seqbox.append(state.seq)
                    state.seq += 1
                seq = seqbox[0]
                node = buf.put(self.stage[src], seq, event, ts, prev_node, cur_ver)
                s_seq: int | None
                if is_start:
                    s_ts, s_seq = ts, seq
                else:
                    s_ts, s_seq = start_ts, start_seq
                out.append((target, node, next_ver, s_ts, ts, s_seq))
                buf.lock_node(node, next_ver)
                fin = self._final_after_proceed(
                    target, event, buf, prev_node, version, ts, ctx, cache
                )
                if fin is not None:
                    out.append((fin, node, next_ver, s_ts, ts, s_seq))
                    buf.lock_node(node, next_ver)
        if is_start:
            out.append((si, None, _increase(version, _calc_self(ignores, takes)), -1, -1, None))
        if prev_node is not None:
            buf.release_node(prev_node, version)
        return out

    def _take_fast(
        self,
        state: NFAState,
        cs: CState,
        event: Any,
        ts: int,
        seqbox: list[int],
        cache: dict[int, bool],
    ) -> list[CState]:
        """``_compute_next`` for a fast state whose condition holds: the same result, built
        directly (one TAKE edge, plus the self IGNORE of skip-till-any)."""
        si, prev_node, version, start_ts, prev_ts, start_seq = cs
        src, target, also_ignore, has_proceed = self.fast_take[si]  # type: ignore[misc]
        is_start = self.is_start[si]
        if not seqbox:
            seqbox.append(state.seq)
            state.seq += 1
        seq = seqbox[0]
        next_ver = (*version, 0)
        # ``state.put(...)`` then ``state.lock_node(node, next_ver)``, inlined for a new node.
        # ``put`` locks ``prev_node`` with ``version`` and the run then releases it with
        # ``version``: as every buffer entry holds >= 1 reference (entries are removed at 0),
        # that pair leaves the buffer unchanged, so both are skipped.
        node = (seq, self.stage[src])
        nodes = state.nodes
        entry = nodes.get(node)
        if entry is None:
            # the new edge is compatible with next_ver (its prefix): both counts become 1
            nodes[node] = [1, [[prev_node, version, 1]]]
            events = state.events
            ev = events.get(seq)
            if ev is None:
                events[seq] = [event, ts, 1]
            else:
                ev[2] += 1
        else:
            entry[1].append([prev_node, version, 0])
            state.lock_node(node, next_ver)
        s_seq: int | None
        if is_start:
            s_ts, s_seq = ts, seq
        else:
            s_ts, s_seq = start_ts, start_seq
        out: list[CState] = [(target, node, next_ver, s_ts, ts, s_seq)]
        if has_proceed:
            fin = self._final_after_proceed(
                target, event, state, prev_node, version, ts, None, cache
            )
            if fin is not None:
                out.append((fin, node, next_ver, s_ts, ts, s_seq))
                state.lock_node(node, next_ver)
        if is_start:
            out.append((si, None, (*version[:-1], version[-1] + 1), -1, -1, None))
        elif also_ignore:
            bumped = (*version[:-1], version[-1] + 1)
            out.append((si, prev_node, bumped, start_ts, prev_ts, start_seq))
            if prev_node is not None:
                state.lock_node(prev_node, bumped)
        return out

    def _final_after_proceed(
        self,
        si: int,
        event: Any,
        buf: SharedBuffer,
        prev_node: NodeId | None,
        version: Version,
        ts: int,
        ctx: ConditionContext | None,
        cache: dict[int, bool],
    ) -> int | None:
        stack = [si]
        while stack:
            cur = stack.pop()
            for action, _src, target, fn, simple, key, neg in self.trans[cur]:
                if action != PROCEED:
                    continue
                if key is None:
                    if ctx is None:
                        ctx = ConditionContext(buf, prev_node, version, ts)
                    ok = fn(event, ctx)
                elif key == -1:
                    ok = True
                else:
                    r = cache.get(key)
                    if r is None:
                        r = cache[key] = bool(simple(event))
                    ok = not r if neg else r
                if ok:
                    if self.is_final[target]:
                        return target
                    stack.append(target)
        return None

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
        while completed:
            m = completed[0]
            if holds_back and partial and cs_key(m) > cs_key(partial[0]):
                break
            completed.pop(0)
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
            i = 0
            for cs in partial:
                if cs[5] is None or ts - cs[3] < w:
                    break
                i += 1
                if is_pending[cs[0]]:
                    potential.append(cs)
                    continue
                paths = buf.extract(cs[1], cs[2])
                events, lo, _hi = buf.materialize(paths[0]) if paths else ({}, -1, -1)
                timeouts.append(Timeout(events, cs[3] + w, lo))
                buf.release_node(cs[1], cs[2])
            new_partial = partial[i:]
        else:
            self._advance_scan(state, ts, timeouts, new_partial, potential)
        result: list[Match] = []
        if potential or state.completed:
            potential.sort(key=cs_key)
            new_partial = self._skip_matches(state, potential, new_partial, result)
        state.partial = new_partial
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
            paths = buf.extract(cs[1], cs[2])
            events, lo, _hi = buf.materialize(paths[0]) if paths else ({}, -1, -1)
            at = cs[4] + pw if by_prev and pw is not None else cs[3] + w
            timeouts.append(Timeout(events, at, lo))
            buf.release_node(cs[1], cs[2])

    def __repr__(self) -> str:
        return f"NFA(states={self.names}, window={self.window_time}, skip={self.skip!r})"
