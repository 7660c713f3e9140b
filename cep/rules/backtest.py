"""Backtest: run rules over a JSON-lines file exactly as the runtime drives :class:`RuleRunner`.

Per rule, the watermark is the largest event time seen minus ``max_out_of_orderness``; after
each event every key whose deadline the watermark passed is advanced (a deadline heap, no
scan). At the end of input the watermark passes every event (``flush``): pending timeouts and
absence matches fire. Processing-time rules use the wall clock, as the runtime does.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .detection import Detection
from .runner import RuleRunner

#: Watermark used at the end of input: beyond any event time.
END_OF_TIME = 2**62


@dataclass
class BacktestStats:
    """Counters of one backtest run (printed as the summary)."""

    lines: int = 0
    events: int = 0
    malformed: int = 0
    routed: int = 0
    detections: Counter[tuple[str, str]] = field(default_factory=Counter)
    unusable: Counter[str] = field(default_factory=Counter)  # rule -> events it could not use
    elapsed: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0


class Backtest:
    """One run: feed lines with :meth:`feed_line`, then :meth:`finish`."""

    def __init__(
        self,
        runner: RuleRunner,
        emit: Callable[[Detection], None],
        *,
        topic: str | None = None,
        contexts: dict[str, dict[str, Any]] | None = None,
        on_malformed: Callable[[int, str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runner = runner
        self.emit = emit
        self.topic = topic
        self.contexts = contexts or {}
        self.on_malformed = on_malformed
        self.clock = clock
        self.states: dict[tuple[str, str], Any] = {}
        # per rule: heap of (deadline, key); ``scheduled`` holds each key's live entry
        self.heaps: dict[str, list[tuple[float, str]]] = {r.name: [] for r in runner.rules}
        self.scheduled: dict[tuple[str, str], float] = {}
        self.processing_time = [r.name for r in runner.rules if r.time is None]
        self.stats = BacktestStats()
        self._started = time.perf_counter()

    def _out(self, detections: list[Detection]) -> None:
        for d in detections:
            self.stats.detections[(d.rule, d.kind)] += 1
            self.emit(d)

    def _schedule(self, rule: str, key: str, state: Any) -> None:
        d = self.runner.next_deadline(rule, state)
        if d is None:
            self.scheduled.pop((rule, key), None)
        elif self.scheduled.get((rule, key)) != d:
            self.scheduled[(rule, key)] = d
            heapq.heappush(self.heaps[rule], (d, key))

    def _due(self, rule: str, now: int) -> None:
        """Advance every key of ``rule`` whose deadline ``now`` has passed."""
        heap = self.heaps[rule]
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if self.scheduled.get((rule, key)) != deadline:
                continue  # stale: the key's live entry is elsewhere in the heap
            del self.scheduled[(rule, key)]
            state = self.states[(rule, key)]
            self._out(self.runner.advance(rule, state, key, now, self.contexts.get(key)))
            self._schedule(rule, key, state)
            if self.scheduled.get((rule, key), now + 1) <= now:
                break  # the engine could not move past ``now``; never spin

    def feed_line(self, index: int, line: bytes | str) -> None:
        """One input line; ``index`` is its 0-based line number (the default event id)."""
        self.stats.lines += 1
        if not line.strip():
            return
        try:
            event = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self._malformed(index, f"invalid JSON: {exc}")
            return
        if not isinstance(event, dict):
            self._malformed(index, f"an event is a JSON object, got {type(event).__name__}")
            return
        self.feed(index, event)

    def _malformed(self, index: int, reason: str) -> None:
        self.stats.malformed += 1
        if self.on_malformed:
            self.on_malformed(index + 1, reason)

    def feed(self, index: int, event: dict[str, Any]) -> None:
        """One decoded event."""
        self.stats.events += 1
        runner = self.runner
        routes, problems = runner.route_report(self.topic, event)
        for rule, _reason in problems:
            self.stats.unusable[rule] += 1
        for route in routes:
            self.stats.routed += 1
            rule, key = route.rule, route.key
            state = self.states.get((rule, key))
            if state is None:
                state = self.states[(rule, key)] = runner.new_state(rule)
            ctx = self.contexts.get(key)
            if route.ts is None:  # processing time: the clock, as in the runtime
                ts = int(self.clock() * 1000)
                found = runner.process(rule, state, key, event, ts, ctx, None, index)
                self._out(found)
                self._schedule(rule, key, state)
            else:
                wm = runner.observe(rule, route.ts)
                found = runner.process(rule, state, key, event, route.ts, ctx, wm, index)
                self._out(found)
                self._schedule(rule, key, state)
                self._due(rule, wm)
        if self.processing_time:
            now = int(self.clock() * 1000)
            for rule in self.processing_time:
                self._due(rule, now)

    def finish(self, flush: bool = True) -> BacktestStats:
        """End of input: unless ``flush`` is False, time passes every event."""
        if flush:
            for (rule, key), state in self.states.items():
                found = self.runner.advance(rule, state, key, END_OF_TIME, self.contexts.get(key))
                self._out(found)
            for heap in self.heaps.values():
                heap.clear()
            self.scheduled.clear()
        self.stats.elapsed = time.perf_counter() - self._started
        return self.stats


def run_backtest(
    runner: RuleRunner,
    lines: Iterable[bytes | str],
    emit: Callable[[Detection], None],
    *,
    flush: bool = True,
    **kwargs: Any,
) -> BacktestStats:
    """Feed every line (0-based index = default event id) and finish."""
    bt = Backtest(runner, emit, **kwargs)
    for i, line in enumerate(lines):
        bt.feed_line(i, line)
    return bt.finish(flush)
