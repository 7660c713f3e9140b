"""Deadline heaps: which keys need time advanced for a rule, and when.

One heap per rule (each rule has its own clock: event-time watermark or processing time).
Expiry pops only due entries, so a tick costs O(due · log n), never a scan of every key.
Entries are invalidated lazily: :meth:`schedule` records a key's current deadline and
:meth:`pop_due` skips heap entries that no longer match it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["DeadlineHeap", "RuleDeadlines"]


class DeadlineHeap:
    """Deadlines of the keys of one rule."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._current: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._current)

    def get(self, key: str) -> int | None:
        return self._current.get(key)

    def schedule(self, key: str, deadline: int | None) -> None:
        """Set (or clear, with None) the deadline of ``key``."""
        if deadline is None:
            self._current.pop(key, None)
            return
        if self._current.get(key) == deadline:
            return
        self._current[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 4 * len(self._current) + 1024:
            self._heap = [(d, k) for k, d in self._current.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: int) -> list[str]:
        """Remove and return the keys whose deadline is <= ``now``, earliest first."""
        due: list[str] = []
        heap, current = self._heap, self._current
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if current.get(key) == deadline:
                del current[key]
                due.append(key)
        return due


class RuleDeadlines:
    """The deadline heaps of one partition, by rule name."""

    def __init__(self) -> None:
        self._by_rule: dict[str, DeadlineHeap] = {}

    def schedule(self, rule: str, key: str, deadline: int | None) -> None:
        heap = self._by_rule.get(rule)
        if heap is None:
            if deadline is None:
                return
            heap = self._by_rule[rule] = DeadlineHeap()
        heap.schedule(key, deadline)

    def schedule_each(
        self, rule: str, values: Mapping[str, Any], deadline_of: Callable[[Any], int | None]
    ) -> None:
        """:meth:`schedule` ``(rule, key, deadline_of(value))`` for each key and value."""
        heap = self._by_rule.get(rule)
        for key, value in values.items():
            deadline = deadline_of(value)
            if heap is None:
                if deadline is None:
                    continue
                heap = self._by_rule[rule] = DeadlineHeap()
            elif deadline is not None and heap._current.get(key) == deadline:
                continue  # unchanged (DeadlineHeap.schedule's first test, without the call)
            heap.schedule(key, deadline)

    def pop_due(self, rule: str, now: int) -> list[str]:
        heap = self._by_rule.get(rule)
        return heap.pop_due(now) if heap else []

    def rules(self) -> list[str]:
        return list(self._by_rule)

    def __len__(self) -> int:
        return sum(len(h) for h in self._by_rule.values())
