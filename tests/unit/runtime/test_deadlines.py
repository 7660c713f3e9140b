"""Deadline heaps: only due keys pop; rescheduling invalidates older entries."""

from __future__ import annotations

from agents.deadlines import DeadlineHeap, RuleDeadlines


def test_pops_only_due_keys_in_order() -> None:
    heap = DeadlineHeap()
    for key, deadline in [("c", 30), ("a", 10), ("b", 20)]:
        heap.schedule(key, deadline)
    assert heap.pop_due(5) == []
    assert heap.pop_due(20) == ["a", "b"]
    assert len(heap) == 1
    assert heap.pop_due(100) == ["c"]


def test_reschedule_and_clear() -> None:
    heap = DeadlineHeap()
    heap.schedule("a", 10)
    heap.schedule("a", 50)  # later deadline: the entry at 10 is stale
    heap.schedule("b", 10)
    heap.schedule("b", None)  # cleared
    assert heap.pop_due(20) == []
    assert heap.pop_due(50) == ["a"]
    assert heap.pop_due(10**9) == []


def test_stale_entries_are_compacted() -> None:
    heap = DeadlineHeap()
    for deadline in range(10_000):
        heap.schedule("k", deadline)
    assert len(heap) == 1
    assert len(heap._heap) < 5_000
    assert heap.pop_due(10**9) == ["k"]


def test_rules_have_separate_clocks() -> None:
    d = RuleDeadlines()
    d.schedule("event-time", "k", 1_000)
    d.schedule("processing", "k", 1_700_000_000_000)
    assert d.pop_due("processing", 2_000) == []
    assert d.pop_due("event-time", 2_000) == ["k"]
    assert len(d) == 1
