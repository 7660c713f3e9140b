"""One event through a key's runs (Flink's ``doProcess`` and ``computeNextStates``).

Each run waiting in a state follows the edges whose conditions hold (``PROCEED`` edges are
followed at once, ``TAKE`` stores the event in the shared buffer, ``IGNORE`` keeps the run),
with Flink's Dewey-version bookkeeping; runs reaching the final state are emitted through the
skip strategy, runs reaching a stop state are discarded.

Hot path: a run waiting in a *fast* state (only ``TAKE(c)`` and a self ``IGNORE``, simple
``c``) is unchanged when ``c(event)`` is false (Flink would re-create the same run with the same
version and lock counts), so nothing is allocated; when ``c`` holds, the new run is built
directly instead of through the general edge walk.
"""

from __future__ import annotations

from typing import Any

from cep.buffer import NodeId, SharedBuffer, Version
from cep.expiry import Expiry
from cep.graph import IGNORE, PROCEED
from cep.match import ConditionContext, Match
from cep.state import WATCH_ALL, CState, NFAState, cs_key


def _increase(v: Version, n: int) -> Version:
    return v if n == 0 else (*v[:-1], v[-1] + n)


def _calc_self(ignores: int, takes: int) -> int:
    return 0 if ignores == 0 and takes == 0 else ignores + max(1, takes)


class Step(Expiry):
    """Processing one event (part of :class:`~cep.nfa.NFA`)."""

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
        fast_take = self.fast_take
        stage = self.stage
        nodes = state.nodes
        for cs in partial:
            si = cs[0]
            spec = fast[si]
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
            starts = is_start[si]
            if starts and not unsorted:
                if cs is not last:
                    unsorted = True
                elif new_partial:
                    prev = new_partial[-1]
                    unsorted = prev[5] is None or prev[3] > ts
            if spec is not None:
                src, target, also_ignore, inline = fast_take[si]  # type: ignore[misc]
                if inline:
                    # ``_take_fast`` inlined for a TAKE into a state without PROCEED edges
                    _si, prev_node, version, start_ts, prev_ts, start_seq = cs
                    if not seqbox:
                        seqbox.append(state.seq)
                        state.seq += 1
                    seq = seqbox[0]
                    next_ver = (*version, 0)
                    node = (seq, stage[src])
                    entry = nodes.get(node)
                    if entry is None:
                        nodes[node] = [1, [[prev_node, version, 1]]]
                        evs = state.events
                        ev = evs.get(seq)
                        if ev is None:
                            evs[seq] = [event, ts, 1]
                        else:
                            ev[2] += 1
                    else:
                        entry[1].append([prev_node, version, 0])
                        state.lock_node(node, next_ver)
                    n: CState
                    if starts:
                        n = (target, node, next_ver, ts, ts, seq)
                    else:
                        n = (target, node, next_ver, start_ts, ts, start_seq)
                    if is_final[target]:
                        potential.append(n)
                    else:
                        new_partial.append(n)
                    if starts:
                        new_partial.append(
                            (si, None, (*version[:-1], version[-1] + 1), -1, -1, None)
                        )
                    elif also_ignore:
                        bumped = (*version[:-1], version[-1] + 1)
                        new_partial.append((si, prev_node, bumped, start_ts, prev_ts, start_seq))
                        if prev_node is not None:
                            state.lock_node(prev_node, bumped)
                    continue
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
                    got = buf.pop_private(m[1], m[2])
                    if got is None:
                        paths = buf.extract(m[1], m[2])
                        if paths:
                            result.append(Match(*buf.materialize(paths[0])))
                        buf.release_node(m[1], m[2])
                    else:
                        result.append(Match(*got))
        if len(new_partial) + len(state.completed) > self.max_partial_matches + 1:
            self._cap(state, new_partial)
        state.partial = new_partial
        state.watch = WATCH_ALL
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
        src, target, also_ignore, inline = self.fast_take[si]  # type: ignore[misc]
        has_proceed = not inline
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
