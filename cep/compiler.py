"""Pattern → NFA compilation and all pattern validation (Flink's ``NFACompiler``).

The graph is built back to front: the final state first, then each stage from the last to the
first, so every stage knows the state it leads to. Stage kinds map to states as in Flink:
singleton, optional (with a twin "ignore" state), times (a chain of copies), looping (a state
that takes itself), NOT stages (edge conditions into a shared ``Stop`` state), a trailing
``not_followed_by`` (a ``Pending`` state that completes on timeout) and group patterns (their
inner stages compiled in place).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cep import conditions as c
from cep.compile_checks import ENDING_STATE_NAME, Checks, _Names
from cep.compile_conditions import (
    Conditions,
    _and,
    _extend_with_until,
    _update_with_greedy,
)
from cep.errors import MalformedPatternError
from cep.graph import FINAL, IGNORE, NORMAL, PENDING, PROCEED, START, STOP, State
from cep.pattern import ConsumingStrategy as CS
from cep.pattern import GroupPattern, Pattern, WithinType
from cep.pattern import QuantifierProperty as QP

if TYPE_CHECKING:
    from cep.nfa import NFA


class _Compiler(Checks, Conditions):
    """Builds the state graph of one pattern (``compile`` then read ``states``)."""

    def __init__(self, pattern: Pattern) -> None:
        self.names = _Names()
        self.stop_states: dict[str, State] = {}
        self.states: list[State] = []
        self.window_time: int | None = None
        self.window_times: dict[str, int] = {}
        self.current_group: GroupPattern | None = None
        self.first_of_loop: dict[int, bool] = {}
        self.current: Pattern = pattern
        self.following: Pattern | None = None
        self.original_state_map: dict[str, State] = {}
        self.skip = pattern.skip_strategy

    # -- entry -----------------------------------------------------------------------------
    def compile(self) -> None:
        last = self.current
        self._check_name_uniqueness()
        self._check_skip_strategy()
        sink = self._create_ending_state()
        sink = self._create_middle_states(sink)
        self._create_start_state(sink)
        if self.window_time is not None and any(
            t > self.window_time for t in self.window_times.values()
        ):
            raise MalformedPatternError(
                "The window length between the previous and current event cannot be larger "
                "than the window length between the first and last event for a Pattern."
            )
        if last.quantifier.consuming_strategy == CS.NOT_FOLLOW and not (
            last.get_window_time(WithinType.PREVIOUS_AND_CURRENT) or self.window_time
        ):
            raise MalformedPatternError(
                "NotFollowedBy is not supported without windowTime as a last part of a Pattern!"
            )

    # -- helpers ---------------------------------------------------------------------------
    def _create_state(self, stype: str, is_take: bool = True, name: str | None = None) -> State:
        base = self.current.name if name is None else name
        state = State(self.names.unique(base), base, stype)
        if is_take:
            t = self.current.get_window_time(WithinType.PREVIOUS_AND_CURRENT)
            if t is not None:
                self.window_times[state.name] = t
        self.states.append(state)
        return state

    def _create_stop_state(self, cond: c.Cond, name: str) -> State:
        stop = self.stop_states.get(name)
        if stop is None:
            stop = State(self.names.unique(name), name, STOP)
            self.states.append(stop)
            stop.add_take_self(cond)
            self.stop_states[name] = stop
        return stop

    def _create_ending_state(self) -> State:
        end = State(self.names.unique(ENDING_STATE_NAME), ENDING_STATE_NAME, FINAL)
        self.states.append(end)
        self.window_time = self.current.get_window_time(WithinType.FIRST_AND_LAST)
        return end

    def _create_middle_states(self, sink: State) -> State:
        last_sink = sink
        while self.current.previous is not None:
            strategy = self.current.quantifier.consuming_strategy
            if strategy == CS.NOT_FOLLOW:
                if last_sink.is_final:
                    pending = self._create_state(PENDING)
                    not_cond = self._take_condition(self.current)
                    stop = self._create_stop_state(not_cond, self.current.name)
                    pending.add_proceed(stop, not_cond)
                    pending.add_ignore_self(c.not_(not_cond))
                    last_sink = pending
                # otherwise converted into edge conditions of the following stage
            elif strategy == CS.NOT_NEXT:
                not_next = self._create_state(NORMAL)
                not_cond = self._take_condition(self.current)
                stop = self._create_stop_state(not_cond, self.current.name)
                if last_sink.is_final:
                    not_next.add_ignore(last_sink, c.not_(not_cond))
                else:
                    not_next.add_proceed(last_sink, c.not_(not_cond))
                not_next.add_proceed(stop, not_cond)
                last_sink = not_next
            else:
                last_sink = self._convert_pattern(last_sink)

            self.following = self.current
            self.current = self.current.previous
            t = self.current.get_window_time(WithinType.FIRST_AND_LAST)
            if t is not None and (self.window_time is None or t < self.window_time):
                self.window_time = t
        return last_sink

    def _create_start_state(self, sink: State) -> State:
        begin = self._convert_pattern(sink)
        begin.type = START
        return begin

    def _convert_pattern(self, sink: State) -> State:
        q = self.current.quantifier
        if q.has(QP.LOOPING):
            self._set_first_of_loop(False)
            s = self._copy_without_transitive_nots(sink)
            looping = self._create_looping(s)
            self._set_first_of_loop(True)
            last_sink = self._create_times_state(looping, sink, self._times())
        elif q.has(QP.TIMES):
            last_sink = self._create_times_state(sink, sink, self._times())
        else:
            last_sink = self._create_singleton(sink)
        self._add_stop_states(last_sink)
        return last_sink

    def _times(self) -> tuple[int, int]:
        return self.current.times_range or (1, 1)

    def _copy_without_transitive_nots(self, sink: State) -> State:
        nots = self._not_conditions()
        if not nots or not self.current.quantifier.has(QP.OPTIONAL):
            return sink
        copy = self._create_state(sink.type, is_take=False, name=sink.stage)
        for t in sink.transitions:
            if t.action == PROCEED:
                target = t.target
                remove = False
                if target.is_stop:
                    remove = any(target.stage == name for _, name in nots)
                else:
                    target = self._copy_without_transitive_nots(t.target)
                if not remove:
                    copy.add(t.action, target, t.cond)
            else:
                copy.add(t.action, copy if t.target is t.source else t.target, t.cond)
        return copy

    def _copy(self, state: State) -> State:
        copy = self._create_state(state.type, is_take=False, name=state.stage)
        for t in state.transitions:
            copy.add(t.action, copy if t.target is t.source else t.target, t.cond)
        return copy

    def _add_stop_states(self, state: State) -> None:
        for cond, name in self._not_conditions():
            state.add_proceed(self._create_stop_state(cond, name), cond)

    def _add_stop_state_to_looping(self, looping: State) -> None:
        f = self.following
        if f is not None and f.quantifier.consuming_strategy == CS.NOT_FOLLOW:
            cond = self._take_condition(f)
            looping.add_proceed(self._create_stop_state(cond, f.name), cond)

    def _create_times_state(self, sink: State, proceed: State, times: tuple[int, int]) -> State:
        frm, to = times
        last_sink = sink
        self._set_first_of_loop(False)
        until = self.current.until_condition
        inner_ignore = _extend_with_until(self._inner_ignore_condition(self.current), until, False)
        take = _extend_with_until(self._take_condition(self.current), until, True)
        assert take is not None
        if self.current.quantifier.has(QP.GREEDY) and frm != to:
            if until is not None:
                self.original_state_map[sink.name] = self._copy(sink)
            _update_with_greedy(sink, take)
        for _ in range(frm, to):
            last_sink = self._create_singleton_full(last_sink, proceed, take, inner_ignore, True)
            self._add_stop_state_to_looping(last_sink)
        for _ in range(frm - 1):
            last_sink = self._create_singleton_full(last_sink, None, take, inner_ignore, False)
            self._add_stop_state_to_looping(last_sink)
        self._set_first_of_loop(True)
        return self._create_singleton_full(
            last_sink,
            proceed,
            take,
            self._ignore_condition(self.current),
            self.current.quantifier.has(QP.OPTIONAL),
        )

    def _create_singleton(self, sink: State) -> State:
        return self._create_singleton_full(
            sink,
            sink,
            self._take_condition(self.current),
            self._ignore_condition(self.current),
            self._is_optional(self.current),
        )

    def _create_singleton_full(
        self,
        sink: State,
        proceed: State | None,
        take: c.Cond,
        ignore: c.Cond | None,
        optional: bool,
    ) -> State:
        if isinstance(self.current, GroupPattern):
            return self._create_group_state(self.current, sink, proceed, optional)
        single = self._create_state(NORMAL)
        s = self._copy_without_transitive_nots(sink)
        single.add_take(s, take)
        proceed_cond = self._true()
        if optional:
            assert proceed is not None
            if self.current.quantifier.has(QP.GREEDY):
                until = self.current.until_condition
                if until is not None:
                    single.add_proceed(
                        self.original_state_map[proceed.name], _and(proceed_cond, until)
                    )
                single.add_proceed(
                    proceed,
                    _and(proceed_cond, c.not_(until)) if until is not None else proceed_cond,
                )
            else:
                single.add_proceed(proceed, proceed_cond)
        if ignore is not None:
            if optional or self._head_of_optional_group(self.current):
                ignore_state = self._create_state(NORMAL)
                ignore_state.add_take(s, take)
                ignore_state.add_ignore_self(ignore)
                self._add_stop_states(ignore_state)
            else:
                ignore_state = single
            single.add_ignore(ignore_state, ignore)
        return single

    def _create_group_state(
        self, group: GroupPattern, sink: State, proceed: State | None, optional: bool
    ) -> State:
        proceed_cond = self._true()
        saved = (self.current, self.following, self.current_group)
        self.current_group = group
        self.current = group.raw_pattern
        last_sink = self._create_middle_states(sink)
        last_sink = self._convert_pattern(last_sink)
        if optional:
            assert proceed is not None
            last_sink.add_proceed(proceed, proceed_cond)
        self.current, self.following, self.current_group = saved
        return last_sink

    def _create_looping_group_state(self, group: GroupPattern, sink: State) -> State:
        proceed_cond = self._true()
        saved = (self.current, self.following, self.current_group)
        dummy = self._create_state(NORMAL)
        self.current_group = group
        self.current = group.raw_pattern
        last_sink = self._create_middle_states(dummy)
        last_sink = self._convert_pattern(last_sink)
        last_sink.add_proceed(sink, proceed_cond)
        dummy.add_proceed(last_sink, proceed_cond)
        self.current, self.following, self.current_group = saved
        return last_sink

    def _create_looping(self, sink: State) -> State:
        if isinstance(self.current, GroupPattern):
            return self._create_looping_group_state(self.current, sink)
        until = self.current.until_condition
        ignore = _extend_with_until(self._inner_ignore_condition(self.current), until, False)
        take = _extend_with_until(self._take_condition(self.current), until, True)
        assert take is not None
        proceed_cond = self._true()
        looping = self._create_state(NORMAL)
        if self.current.quantifier.has(QP.GREEDY):
            if until is not None:
                copy = self._copy(sink)
                looping.add_proceed(copy, _and(proceed_cond, until))
                self.original_state_map[sink.name] = copy
            looping.add_proceed(
                sink, _and(proceed_cond, c.not_(until)) if until is not None else proceed_cond
            )
            _update_with_greedy(sink, self._take_condition(self.current))
        else:
            looping.add_proceed(sink, proceed_cond)
        looping.add_take_self(take)
        self._add_stop_state_to_looping(looping)
        if ignore is not None:
            ignore_state = self._create_state(NORMAL)
            ignore_state.add_take(looping, take)
            ignore_state.add_ignore_self(ignore)
            looping.add_ignore(ignore_state, ignore)
            self._add_stop_state_to_looping(ignore_state)
        return looping


def compile_pattern(pattern: Pattern, max_partial_matches: int = 10_000) -> NFA:
    """Compile a pattern into an immutable :class:`~cep.nfa.NFA`; raises MalformedPatternError."""
    from cep.nfa import NFA

    if not isinstance(pattern, Pattern):
        raise MalformedPatternError(
            f"compile_pattern takes a Pattern, got {type(pattern).__name__}."
        )
    comp = _Compiler(pattern)
    comp.compile()
    return NFA(
        comp.states,
        window_time=comp.window_time or 0,
        window_times=comp.window_times,
        skip=pattern.skip_strategy,
        max_partial_matches=max_partial_matches,
        pattern=pattern,
    )


__all__ = ["ENDING_STATE_NAME", "IGNORE", "compile_pattern"]
