"""A brute-force reference matcher for small patterns, written from Flink CEP's rules.

It shares no code with ``cep``: a pattern is described by a :class:`Spec` (a few stages, how
each is entered, its quantifier, negations between stages, a window, a skip strategy) and the
matcher follows every partial match (a labelled subsequence of the input) one event at a time,
applying the rules below. ``tests/unit/cep/test_flink_reference.py`` checks it against Flink's
own verdicts; ``test_properties.py`` checks the engine against it.

The rules (Flink 1.18/1.19, the ``NFA``/``NFACompiler`` semantics):

* A partial match waits for its next event in one or more *options*: ``(stage, "inner")``
  (one more event of the current looping/times stage) or ``(stage, "outer")`` (the first event
  of a later stage; stages in between must allow zero events). Right after a take, all options
  are held by one computation (*joint*); when an event is ignored, each option that may ignore
  it continues alone (*single*): Flink's ignore edges lead to states without proceed edges.
* An option takes an event satisfying its stage condition. It may ignore an event: strict
  contiguity never, relaxed contiguity (``followed_by``, default inside loops) when the event
  does NOT satisfy the stage condition, non-deterministic (``followed_by_any``,
  ``allow_combinations``) always. Every event also starts new partial matches (the begin
  stage, or later stages when all before allow zero events); the start never ignores.
* A match completes when its last stage count is allowed and all later stages allow zero
  events; it is emitted while processing its last event.
* ``not_next(N)`` after stage i: a joint computation that can leave stage i dies, whole, when
  the next event satisfies N. ``not_followed_by(N)`` before stage j: any computation waiting to
  enter j dies, whole, on an event satisfying N (even if j would take that event; a match that
  this very take completes is still emitted, as in Flink where final states are collected
  before a stop state discards the path).
* ``within(W)``: before an event at ``ts`` is processed, partial matches with
  ``ts - start >= W`` time out (reported with timestamp ``start + W``).
* Skip strategies: completed matches are held back while a partial match that started
  earlier is alive; the earliest-starting one is emitted, then partial and held matches are
  pruned (``skip_to_next``: start <= first event; ``skip_past_last_event``: start <= last
  event; ``skip_to_first/last(s)``: start < first/last event of stage ``s``). When two held
  matches tie on their start and the outcome depends on which Flink's priority queue pops
  first, :class:`Ambiguous` is raised (the property tests leave such inputs out).

* A trailing ``not_followed_by(N)`` (needs ``within``) parks the partial match in Flink's
  *pending* state; when its window passes without an N event it is emitted as a match by
  ``advance`` (a partial match still inside a loop state times out instead, as in Flink). A
  trailing ``not_next(N)`` emits the partial match on the next event if that is not N.

Domain (checked by :meth:`Spec.validate`): simple conditions, 1-4 stages, a negation after a
non-optional stage and, unless it is the last, before a non-optional stage; no
greedy/until/groups/iterative conditions; FIRST_AND_LAST windows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

STRICT = "strict"
RELAXED = "relaxed"
ANY = "any"

NO_SKIP = "no_skip"
SKIP_TO_NEXT = "skip_to_next"
SKIP_PAST_LAST = "skip_past_last_event"
SKIP_TO_FIRST = "skip_to_first"
SKIP_TO_LAST = "skip_to_last"

Cond = Callable[[Any], bool]
Taken = tuple[tuple[int, int], ...]  # (event position, stage index), increasing positions
Option = tuple[int, str]  # (stage index, "inner" | "outer")
MatchKey = tuple[tuple[int, str], ...]  # (event position, stage name), sorted


class Ambiguous(Exception):
    """Flink's output depends on the pop order of equal-priority held matches."""


@dataclass(frozen=True)
class Stage:
    """A positive stage: ``name``, condition, how it is entered and its quantifier."""

    name: str
    cond: Cond
    contiguity: str = RELAXED  # how it follows the previous stage (ignored for the first)
    min: int = 1
    max: int | None = 1  # None: unbounded (one_or_more, times_or_more)
    optional: bool = False
    inner: str = RELAXED  # between events of a times/looping stage

    def allows(self, n: int) -> bool:
        if n == 0:
            return self.optional
        return n >= self.min and (self.max is None or n <= self.max)


@dataclass(frozen=True)
class Negation:
    """``not_next`` / ``not_followed_by`` between positive stage ``after`` and ``after + 1``."""

    kind: str  # "not_next" | "not_followed_by"
    after: int
    cond: Cond


@dataclass(frozen=True)
class Spec:
    stages: tuple[Stage, ...]
    negations: tuple[Negation, ...] = ()
    window: int | None = None
    skip: str = NO_SKIP
    skip_stage: str | None = None

    def validate(self) -> None:
        assert len(self.stages) >= 1, "at least one stage"
        seen = set()
        for neg in self.negations:
            assert neg.kind in ("not_next", "not_followed_by"), neg.kind
            assert 0 <= neg.after < len(self.stages), "a negation follows a stage"
            assert neg.after not in seen, "one negation per gap"
            seen.add(neg.after)
            assert not self.stages[neg.after].optional, "Flink: no NOT after an optional stage"
            if neg.after == len(self.stages) - 1:
                assert neg.kind == "not_next" or self.window, "Flink: trailing NOT needs within"
            else:
                assert not self.stages[neg.after + 1].optional, "domain: stage after NOT mandatory"
        for st in self.stages:
            assert st.contiguity in (STRICT, RELAXED, ANY) and st.inner in (STRICT, RELAXED, ANY)
            assert st.min >= 1 and (st.max is None or st.max >= st.min)
        assert self.skip in (NO_SKIP, SKIP_TO_NEXT, SKIP_PAST_LAST, SKIP_TO_FIRST, SKIP_TO_LAST)


@dataclass(frozen=True)
class Comp:
    taken: Taken
    options: tuple[Option, ...]
    joint: bool


@dataclass
class Result:
    """What the engine should output, call by call.

    ``calls[k]`` is the output of the k-th engine call, in the harness order ``advance(ts_0),
    process(e_0), advance(ts_1), process(e_1), ..., [final advance]``: a list of *slots*, each a
    frozenset of acceptable matches (one element unless Flink's choice among tied matches is
    unspecified but inconsequential). ``timeouts`` is the set of ``(match, timestamp)``.
    """

    calls: list[list[frozenset[MatchKey]]] = field(default_factory=list)
    timeouts: set[tuple[MatchKey, int]] = field(default_factory=set)

    def all_matches(self) -> list[frozenset[MatchKey]]:
        return [slot for call in self.calls for slot in call]


class Reference:
    def __init__(self, spec: Spec) -> None:
        spec.validate()
        self.spec = spec
        self.stages = spec.stages
        self.neg_after = {n.after: n for n in spec.negations}
        # a trailing negation is a virtual stage k = len(stages) that never takes an event
        self.k = len(spec.stages)
        self.trailing = self.neg_after.get(self.k - 1)

    # -- structure -------------------------------------------------------------------------
    def _count_last(self, taken: Taken) -> tuple[int, int]:
        stage = taken[-1][1]
        n = 0
        for _, s in reversed(taken):
            if s != stage:
                break
            n += 1
        return stage, n

    def options_after(self, taken: Taken) -> tuple[Option, ...]:
        i, c = self._count_last(taken)
        st = self.stages[i]
        opts: list[Option] = []
        if st.max is None or c < st.max:
            opts.append((i, "inner"))
        if st.allows(c):
            for j in range(i + 1, len(self.stages)):
                opts.append((j, "outer"))
                if not self.stages[j].allows(0):
                    break
            if i == self.k - 1 and self.trailing is not None:
                opts.append((self.k, "outer"))
        return tuple(opts)

    def complete(self, taken: Taken) -> bool:
        """Complete when its last event is taken (a trailing negation completes otherwise)."""
        if self.trailing is not None:
            return False
        i, c = self._count_last(taken)
        return self.stages[i].allows(c) and all(
            self.stages[j].allows(0) for j in range(i + 1, len(self.stages))
        )

    def _strategy(self, opt: Option) -> str:
        if opt[0] == self.k:  # trailing negation: notNext looks at one event, notFollowedBy waits
            return STRICT if self.trailing.kind == "not_next" else RELAXED
        st = self.stages[opt[0]]
        return st.inner if opt[1] == "inner" else st.contiguity

    def _may_ignore(self, opt: Option, event: Any) -> bool:
        strategy = self._strategy(opt)
        if strategy == STRICT:
            return False
        if strategy == ANY:
            return True
        if opt[0] == self.k:
            return not self.trailing.cond(event)
        return not self.stages[opt[0]].cond(event)

    def _killed(self, comp: Comp, event: Any) -> str | None:
        # not_next after stage i: only a joint computation that may leave stage i (it holds the
        # option to enter i + 1) reaches Flink's notNext state and its stop state.
        for opt in comp.options:
            neg = self.neg_after.get(opt[0] - 1)
            if (
                opt[1] == "outer"
                and neg is not None
                and neg.kind == "not_next"
                and comp.joint
                and neg.cond(event)
            ):
                return "not_next"
        # not_followed_by after stage i: Flink adds the stop edge to the entry of stage i + 1
        # (addStopStates) and to every inner state of a times/looping stage i
        # (addStopStateToLooping), but not to the ignore copies of optional times copies.
        last_stage, count = self._count_last(comp.taken)
        for i, neg in self.neg_after.items():
            if neg.kind != "not_followed_by" or not neg.cond(event):
                continue
            if comp.joint and last_stage == i:
                return "not_followed_by"
            if (i + 1, "outer") in comp.options:
                return "not_followed_by"
            if not comp.joint and comp.options == ((i, "inner"),):
                st = self.stages[i]
                if st.max is None or count < st.min:
                    return "not_followed_by"
        return None

    def _pending(self, comp: Comp) -> bool:
        """In Flink's Pending state: waiting only for a trailing not_followed_by to time out."""
        return (
            self.trailing is not None
            and self.trailing.kind == "not_followed_by"
            and comp.options == ((self.k, "outer"),)
        )

    def key(self, taken: Taken) -> MatchKey:
        return tuple((pos, self.stages[s].name) for pos, s in taken)

    # -- skip strategies ---------------------------------------------------------------------
    def _pruning_pos(self, taken: Taken) -> int | None:
        skip = self.spec.skip
        if skip == SKIP_TO_NEXT:
            return taken[0][0]
        if skip == SKIP_PAST_LAST:
            return taken[-1][0]
        positions = [p for p, s in taken if self.stages[s].name == self.spec.skip_stage]
        if not positions:
            return None
        return positions[0] if skip == SKIP_TO_FIRST else positions[-1]

    def _should_prune(self, start: int, pruning: int) -> bool:
        if self.spec.skip in (SKIP_TO_NEXT, SKIP_PAST_LAST):
            return start <= pruning
        return start < pruning

    def _prune(
        self, taken: Taken, comps: list[Comp], held: list[Taken]
    ) -> tuple[list[Comp], list[Taken]]:
        pid = self._pruning_pos(taken)
        if pid is None:
            return comps, held
        comps = [c for c in comps if not self._should_prune(c.taken[0][0], pid)]
        held = [h for h in held if not self._should_prune(h[0][0], pid)]
        return comps, held

    def _release(
        self, comps: list[Comp], held: list[Taken]
    ) -> tuple[list[Comp], list[Taken], list[frozenset[MatchKey]]]:
        out: list[frozenset[MatchKey]] = []
        if self.spec.skip == NO_SKIP:
            return comps, [], [frozenset([self.key(h)]) for h in held]
        while held:
            first = min(h[0][0] for h in held)
            if any(c.taken[0][0] < first for c in comps):
                break
            tied = [h for h in held if h[0][0] == first]
            outcomes = []
            for cand in tied:
                rest = [h for h in held if h is not cand]
                new_comps, new_held = self._prune(cand, comps, rest)
                outcomes.append((cand, new_comps, new_held))
            if len(tied) > 1:
                # inconsequential only if every choice prunes the other tied matches and
                # leaves the same partial and held matches behind
                same = all(
                    o[1] == outcomes[0][1]
                    and all(h[0][0] != first for h in o[2])
                    and sorted(o[2]) == sorted(outcomes[0][2])
                    for o in outcomes
                )
                if not same:
                    raise Ambiguous(f"held matches tie on start {first}")
            out.append(frozenset(self.key(o[0]) for o in outcomes))
            _, comps, held = outcomes[0]
        return comps, held, out

    # -- the run ---------------------------------------------------------------------------
    def run(
        self,
        events: Sequence[Any],
        timestamps: Sequence[int],
        final_advance: int | None = None,
    ) -> Result:
        """Feed ``events`` like Flink's ``NFATestHarness``: ``advance(ts)`` then ``process``."""
        res = Result()
        comps: list[Comp] = []
        held: list[Taken] = []
        window = self.spec.window
        stamps = list(timestamps)

        def advance(ts: int) -> list[frozenset[MatchKey]]:
            nonlocal comps, held
            if window is not None and window > 0:
                alive = []
                for c in comps:
                    start_ts = stamps[c.taken[0][0]]
                    if ts - start_ts < window:
                        alive.append(c)
                    elif self._pending(c):
                        held.append(c.taken)  # Flink's pending state: absence confirmed
                    else:
                        res.timeouts.add((self.key(c.taken), start_ts + window))
                comps = alive
            comps, held, out = self._release(comps, held)
            return out

        for t, (event, ts) in enumerate(zip(events, stamps, strict=True)):
            res.calls.append(advance(ts))
            new_comps: list[Comp] = []
            completed: list[Taken] = []
            for comp in comps:
                kill = self._killed(comp, event)
                if kill == "not_next":
                    continue
                last_pos = comp.taken[-1][0]
                succ: list[Comp] = []
                for opt in comp.options:
                    if self._strategy(opt) == STRICT and t != last_pos + 1:
                        continue
                    if opt[0] == self.k:
                        if self.trailing.kind == "not_next":
                            completed.append(comp.taken)  # Flink: ignore edge to Final
                        elif self._may_ignore(opt, event):
                            succ.append(Comp(comp.taken, (opt,), False))
                        continue
                    stage = self.stages[opt[0]]
                    if stage.cond(event):
                        taken = (*comp.taken, (t, opt[0]))
                        if self.complete(taken):
                            completed.append(taken)
                        opts = self.options_after(taken)
                        if opts:
                            succ.append(Comp(taken, opts, True))
                    if self._may_ignore(opt, event):
                        succ.append(Comp(comp.taken, (opt,), False))
                if kill is None:
                    new_comps.extend(succ)
            for j, stage in enumerate(self.stages):
                if stage.cond(event):
                    taken = ((t, j),)
                    if self.complete(taken):
                        completed.append(taken)
                    opts = self.options_after(taken)
                    if opts:
                        new_comps.append(Comp(taken, opts, True))
                if not stage.allows(0):
                    break
            comps = new_comps
            held.extend(completed)
            comps, held, out = self._release(comps, held)
            res.calls.append(out)
        if final_advance is not None:
            res.calls.append(advance(final_advance))
        return res


def flatten(result: Result) -> list[MatchKey]:
    """All emitted matches, assuming no ambiguous slot (each slot has one match)."""
    out = []
    for slot in result.all_matches():
        assert len(slot) == 1, slot
        out.append(next(iter(slot)))
    return out
