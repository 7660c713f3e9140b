"""Every ported Flink case gives Flink's verdict also when the NFA state is written with
``state.to_bytes()`` and read back with ``nfa.state_from_bytes()`` before every event (as the
runtime does between batches), so partial matches, held-back matches and timers survive."""

from __future__ import annotations

import pytest
import test_flink_aftermatchskip
import test_flink_greedy_until
import test_flink_group_iterative
import test_flink_nfaitcase
import test_flink_notpattern
import test_flink_sameelement
import test_flink_times
from flink_harness import CASES, check_engine

assert (
    test_flink_aftermatchskip
    and test_flink_greedy_until
    and test_flink_group_iterative
    and test_flink_nfaitcase
    and test_flink_notpattern
    and test_flink_sameelement
    and test_flink_times
)


@pytest.mark.parametrize("name", sorted(CASES))
def test_flink_case_survives_state_roundtrip(name: str):
    check_engine(CASES[name](), roundtrip=True)
