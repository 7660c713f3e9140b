"""The reference matcher (reference.py) agrees with Flink's verdicts.

Every ported Flink case that carries a reference ``Spec`` is replayed through the brute-force
matcher, and its output must equal Flink's expected matches (and timeouts, when the case checks
them). This is what makes the reference a trustworthy oracle for test_properties.py.

Where Flink picks one of several equal-priority held matches (its priority queue breaks the
tie), the reference reports the whole set of candidates for that slot; Flink's pick must be
one of them.
"""

from __future__ import annotations

import pytest
import test_flink_aftermatchskip
import test_flink_nfaitcase
import test_flink_notpattern
import test_flink_sameelement
import test_flink_times
from flink_harness import CASES, Case, canon, ekey
from reference import Reference

assert (
    test_flink_aftermatchskip
    and test_flink_nfaitcase
    and test_flink_notpattern
    and test_flink_sameelement
    and test_flink_times
)  # registered

WITH_SPEC = sorted(name for name, build in CASES.items() if build().spec is not None)


def replay(case: Case):
    events = [e for e, _ in case.records]
    stamps = [ts for _, ts in case.records]
    result = Reference(case.spec).run(events, stamps, case.final_advance)
    slots = [
        {tuple(sorted(ekey(events[pos]) for pos, _ in key)) for key in slot}
        for slot in result.all_matches()
    ]
    timeouts = {
        (tuple(sorted(ekey(events[pos]) for pos, _ in key)), ts) for key, ts in result.timeouts
    }
    return slots, timeouts


def assign(expected: list[tuple], slots: list[set[tuple]]) -> bool:
    """Can every expected match take a distinct slot that allows it (and all slots be used)?"""
    if len(expected) != len(slots):
        return False
    if not expected:
        return True
    first, rest = expected[0], expected[1:]
    for i, slot in enumerate(slots):
        if first in slot and assign(rest, slots[:i] + slots[i + 1 :]):
            return True
    return False


def test_enough_cases_are_replayed():
    assert len(WITH_SPEC) >= 60


@pytest.mark.parametrize("name", WITH_SPEC)
def test_reference_agrees_with_flink(name: str):
    case = CASES[name]()
    slots, timeouts = replay(case)
    if case.expected is not None:
        want = canon(case.expected)
        assert assign(want, slots), f"\nreference: {slots}\n    flink: {want}"
    if case.expected_timeouts is not None:
        assert timeouts == case.expected_timeouts
