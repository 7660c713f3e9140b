"""A heap of per-key deadlines: which keys need time advanced, and when.

Expiry pops only due entries, so a tick costs O(due · log n), never a scan of every key.
Entries are invalidated lazily: :meth:`DeadlineHeap.schedule` records a key's current deadline
and :meth:`DeadlineHeap.pop_due` skips heap entries that no longer match it; the heap is
rebuilt when stale entries outnumber live ones four to one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Mapping
from typing import Any

__all__ = ["DeadlineHeap"]


class DeadlineHeap:
    """Deadlines of a set of keys (one clock)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, Hashable]] = []
        #: key -> its deadline (read it, change it only through :meth:`schedule`)
        self.current: dict[Hashable, float] = {}

    def __len__(self) -> int:
        return len(self.current)

    def schedule(self, key: Hashable, deadline: float | None) -> None:
        """Set (or clear, with None) the deadline of ``key``."""
        if deadline is None:
            self.current.pop(key, None)
            return
        if self.current.get(key) == deadline:
            return
        self.current[key] = deadline
        heapq.heappush(self._heap, (deadline, key))
        if len(self._heap) > 4 * len(self.current) + 1024:
            self.compact()

    def compact(self) -> None:
        """Drop the stale entries: the heap holds each key's current deadline once."""
        self._heap = [(d, k) for k, d in self.current.items()]
        heapq.heapify(self._heap)

    def schedule_each(
        self, values: Mapping[Any, Any], deadline_of: Callable[[Any], float | None]
    ) -> None:
        """:meth:`schedule` ``(key, deadline_of(value))`` for each key and value."""
        current = self.current
        for key, value in values.items():
            deadline = deadline_of(value)
            if deadline is None or current.get(key) != deadline:
                self.schedule(key, deadline)

    def pop_due(self, now: float) -> list[Any]:
        """Remove and return the keys whose deadline is <= ``now``, earliest first."""
        due: list[Any] = []
        heap, current = self._heap, self.current
        while heap and heap[0][0] <= now:
            deadline, key = heapq.heappop(heap)
            if current.get(key) == deadline:
                del current[key]
                due.append(key)
        return due

    def earliest(self) -> float | None:
        """The earliest deadline of any key (None when no key has one)."""
        heap, current = self._heap, self.current
        while heap and current.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # a stale entry
        return heap[0][0] if heap else None
