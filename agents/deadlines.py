"""Deadline heaps of a keyed partition: one :class:`cep.deadlines.DeadlineHeap` per rule (each
rule has its own clock: event-time watermark or processing time)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cep.deadlines import DeadlineHeap

__all__ = ["DeadlineHeap", "RuleDeadlines"]


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
        if heap is None:
            heap = DeadlineHeap()
        heap.schedule_each(values, deadline_of)
        if heap and rule not in self._by_rule:
            self._by_rule[rule] = heap

    def pop_due(self, rule: str, now: int) -> list[str]:
        heap = self._by_rule.get(rule)
        return heap.pop_due(now) if heap else []

    def rules(self) -> list[str]:
        return list(self._by_rule)

    def __len__(self) -> int:
        return sum(len(h) for h in self._by_rule.values())
