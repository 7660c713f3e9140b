"""The lookup tables a compiled pattern is run from (built once, shared by every key).

Built from the state graph of :mod:`cep.compiler`: per NFA state its transition rows with
compiled conditions, whether it is *fast* (only ``TAKE(c)`` and a self ``IGNORE`` with a simple
``c``: when ``c(event)`` is false a run waiting there is unchanged), the quick-check condition,
how a fast take is built, and the guards that decide whether an event can start a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cep import conditions as c
from cep.graph import IGNORE, PROCEED, TAKE, State
from cep.skip import SkipStrategy
from cep.state import CState


class Tables:
    """The immutable part of an :class:`~cep.nfa.NFA`: graph, windows and lookup tables."""

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
        # ``skip_to_first/last(...).throw_exception_on_miss()`` checks every match: its
        # ``prune`` may raise even when there is nothing to prune
        self._prune_may_raise = bool(getattr(skip, "throw_on_miss", False))
        self.max_partial_matches = max_partial_matches
        self.pattern = pattern
        # transition rows: (action, source, target, fn(e, ctx), simple fn, cache key, negated)
        # cache key: -1 = always true; None = iterative; else the number of the (non-negated)
        # condition (``_cond_key``), whose value is computed once per event and shared by all
        # runs.
        self._cond_keys: dict[int, tuple[int, Any]] = {}
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
                    key, simple = self._cond_key(cond), c.compile_simple(cond)
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
        # quick-check function (by id) -> the cache keys it answers: ``KeyedRunner`` checks
        # the distinct functions of a key's runs (``NFA._watch``) and passes what it found to
        # ``_process`` under these keys
        self._fn_keys: dict[int, tuple[int, ...]] = {}
        for key, fn in self._quick:
            if key is not None and key not in self._fn_keys.get(id(fn), ()):
                self._fn_keys[id(fn)] = (*self._fn_keys.get(id(fn), ()), key)
        # a fresh state taking an event in ``start_new``: (target, node, start run after), if
        # the start state's take is inlined, leads to a non-final state and the cap allows 1
        first_take = self.fast_take[self.start_index]
        self._first_take: tuple[int, tuple[int, str], CState] | None = None
        if (
            first_take is not None
            and first_take[3]
            and not self.is_final[first_take[1]]
            and max_partial_matches >= 1
        ):
            self._first_take = (
                first_take[1],
                (0, self.stage[first_take[0]]),
                (self.start_index, None, (2,), -1, -1, None),
            )
        self.stage_names = list(dict.fromkeys(s.stage for s in self.graph))
        self.start_guards = self._start_guards()
        self.event_guards = self._event_guards()
        self._waiting_for = [self._waiting_for_stages(i) for i in range(len(self.graph))]

    def _cond_key(self, cond: Any) -> int:
        """A small number per condition object (0, 1, ...): the per-event cache key. Small
        ints compare on CPython's fast path (an ``id`` does not)."""
        got = self._cond_keys.get(id(cond))
        if got is None:
            # the condition is kept alongside its number, so its id is not reused
            got = self._cond_keys[id(cond)] = (len(self._cond_keys), cond)
        return got[0]

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

    def _event_guards(self) -> frozenset[tuple[str, Any]] | None:
        """(field, value) pairs of which an event must match one to change any state of this
        pattern, idle or not; None when an event matching none may still change one.

        An event that matches none of them fails every ``TAKE`` and ``PROCEED`` condition of
        every state a run can wait in, and a run waiting in such a state keeps itself through a
        self ``IGNORE`` that then holds (relaxed contiguity): the runs, the shared buffer, the
        versions and the lock counts stay as they were (see :mod:`cep.step`). Only time moves
        to the event's timestamp; left out, the event must not change what time brings
        either: None when expiring runs in two steps can end otherwise than in one
        (:meth:`_time_steps_matter`). A state with strict contiguity (no self ``IGNORE``), an
        unguarded condition, or an ``IGNORE`` to another state makes every event matter: None.
        The caller's time must not go back: an event left out then would have expired runs
        that a later event with an earlier timestamp still finds.
        """
        waiting = [s for s in self.graph if not (s.is_final or s.is_stop)]
        found: set[tuple[str, Any]] = set()
        for s in waiting:
            for t in s.transitions:
                if t.action != IGNORE:
                    g = c.guards(t.cond)
                    if g is None:
                        return None
                    found |= g
        for s in waiting:
            kept = s.is_start  # the start run is re-created whatever the event
            for t in s.transitions:
                if t.action != IGNORE:
                    continue
                if t.target is s:
                    kept = kept or _holds_unless(t.cond, found)
                elif not _fails_unless(t.cond, found):
                    return None
            if not kept:
                return None
        if self._time_steps_matter():
            return None
        return frozenset(found)

    def _time_steps_matter(self) -> bool:
        """Whether moving time to ``t1`` and then to ``t2`` can end otherwise than moving it
        to ``t2`` at once: an event left out takes the first step away (``process`` moves
        time to the event's timestamp first).

        One step expires runs in the order they started; two expire them in the order of
        their deadlines. With a stage window (``within`` between previous and current event)
        these differ, and so does the order of timeouts and absence matches. Under a skip
        strategy, a match completed when time moves (an absence, or one held back until an
        earlier run expired) prunes the runs started up to its pruning point: a step between
        its deadline and theirs prunes them, one step past both times them out first. Neither
        happens when every match is one event, nor in a chain of one-event stages with simple
        conditions and no trailing absence: there no match completes when time moves, and none
        is held back (with time not going back, a run that started earlier is never at an
        earlier stage than one that started later).
        """
        if not self.has_windows:
            return False
        if self.window_times:
            return True
        if not self.skip.is_skip_strategy:
            return False
        return not (self._one_event_matches() or self._plain_chain())

    def _one_event_matches(self) -> bool:
        """Only the start state takes events (a match is one event)."""
        for s in self.graph:
            if s.is_final or s.is_stop:
                continue
            for t in s.transitions:
                if t.action == TAKE and not s.is_start:
                    return False
                if t.action == PROCEED and not t.target.is_stop:
                    return False
        return True

    def _plain_chain(self) -> bool:
        """Every state a run waits in takes one simple condition into another state, ignores
        what fails it (relaxed contiguity) and may only be stopped by a simple NOT condition.
        A trailing absence (``Pending`` state) only after two stages no event can both start
        and end: a run that started within such a match (after its first event, up to its
        second) took its second event too, so it is pending as well, never timed out."""
        takes: list[Any] = []
        pending = False
        for s in self.graph:
            if s.is_final or s.is_stop:
                continue
            if s.is_pending:
                pending = True
                continue
            take = [t for t in s.transitions if t.action == TAKE]
            if len(take) != 1 or take[0].target is s or not take[0].cond.is_simple:
                return False
            cond = take[0].cond
            takes.append(cond)
            for t in s.transitions:
                if t.action == PROCEED and not (t.target.is_stop and t.cond.is_simple):
                    return False
                if t.action == IGNORE and not (
                    t.target is s and t.cond.op == "not" and t.cond.args[0] is cond
                ):
                    return False
        if pending:
            return len(takes) == 2 and _disjoint(c.guards(takes[0]), c.guards(takes[1]))
        return True

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
        return (self._cond_key(take), c.compile_simple(take), self_ignore or s.is_start)

    def _fast_take_spec(self, i: int) -> tuple[int, int, bool, bool] | None:
        """For a fast state: (source, target, ignores-also-when-taking, inline), where
        ``inline``: the target has no PROCEED edge and neither state is a stop state, so a
        take needs no look past the target (``_process`` builds the new run itself)."""
        if self.fast[i] is None:
            return None
        s = self.graph[i]
        take = next(t for t in s.transitions if t.action == TAKE)
        also_ignore = any(t.action == IGNORE and t.cond.op == "true" for t in s.transitions)
        target = self.index[take.target.name]
        has_proceed = any(t.action == PROCEED for t in take.target.transitions)
        inline = not has_proceed and not self.is_stop[target] and not self.is_stop[i]
        return (self.index[take.source.name], target, also_ignore, inline)

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


def _disjoint(a: set[tuple[str, Any]] | None, b: set[tuple[str, Any]] | None) -> bool:
    """No event matches a guard of ``a`` and one of ``b`` (same field, other values)."""
    if a is None or b is None:
        return False
    return all(fa == fb and va != vb for fa, va in a for fb, vb in b)


def _fails_unless(cond: Any, guards: set[tuple[str, Any]]) -> bool:
    """``cond`` is false for every event that matches none of ``guards``."""
    g = c.guards(cond)
    return g is not None and g <= guards


def _holds_unless(cond: Any, guards: set[tuple[str, Any]]) -> bool:
    """``cond`` is true for every event that matches none of ``guards``."""
    if cond.op == "true":
        return True
    if cond.op == "not":
        return _fails_unless(cond.args[0], guards)
    if cond.op == "and":
        return _holds_unless(cond.args[0], guards) and _holds_unless(cond.args[1], guards)
    if cond.op == "or":
        return _holds_unless(cond.args[0], guards) or _holds_unless(cond.args[1], guards)
    return False
