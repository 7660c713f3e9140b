"""Deadline heaps: only due keys pop; rescheduling invalidates older entries."""

from __future__ import annotations

from agents.deadlines import RuleDeadlines
from cep.deadlines import DeadlineHeap


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
    assert heap.earliest() == 50  # the stale entries at 10 are skipped
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


def test_schedule_each_is_schedule_per_key() -> None:
    plans = {"a": 10, "b": None, "c": 30, "d": 10}
    one, each = RuleDeadlines(), RuleDeadlines()
    for key, deadline in plans.items():
        one.schedule("r", key, deadline)
    each.schedule_each("r", plans, lambda d: d)
    assert len(one) == len(each) == 3
    again = {"a": 10, "c": 5, "d": None}  # unchanged, earlier, cleared
    for key, deadline in again.items():
        one.schedule("r", key, deadline)
    each.schedule_each("r", again, lambda d: d)
    each.schedule_each("nothing-due", {"x": None}, lambda d: d)
    assert each.rules() == ["r"]
    assert one.pop_due("r", 100) == each.pop_due("r", 100) == ["c", "a"]
