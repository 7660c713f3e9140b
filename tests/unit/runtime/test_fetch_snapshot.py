"""The worker's Faust patch that keeps each fetch to the partitions active when it began.

faust-streaming 0.15 passes its live set of active partitions to the fetch, and aiokafka's
``fetched_records`` returns every assigned partition's records when that set is empty. A fetch
waiting through a rebalance saw the set emptied (every partition paused), returned the kept
changelog partitions' records while the flow was stopped, and Faust dropped them without
seeking those partitions back: table recovery then waited forever.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from app.faust_app import _fetch_only_the_partitions_asked_for

KEYED = TP("app-keyed", 2)
CHANGELOG = TP("app-state-changelog", 2)


@pytest.fixture
def fetch_calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Patch a fake fetch that waits until released, then records the partitions it was given."""
    calls: dict[str, Any] = {"release": asyncio.Event(), "seen": []}

    async def fake_getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
        await calls["release"].wait()
        calls["seen"].append(None if active_partitions is None else set(active_partitions))
        return {}

    thread_cls = driver.AIOKafkaConsumerThread
    monkeypatch.setattr(thread_cls, "getmany", fake_getmany)
    monkeypatch.setattr(thread_cls, "_kairos_fetch_snapshot", False, raising=False)
    _fetch_only_the_partitions_asked_for()
    return calls


async def test_a_fetch_keeps_the_partitions_it_began_with_when_the_set_is_emptied(
    fetch_calls: dict[str, Any],
) -> None:
    live = {KEYED}
    fetch = asyncio.create_task(driver.AIOKafkaConsumerThread.getmany(object(), live, 1.0))
    await asyncio.sleep(0)
    live.clear()  # a rebalance pauses every partition while the fetch waits
    live.add(CHANGELOG)  # recovery resumes the changelog partition it reads from
    fetch_calls["release"].set()
    assert await fetch == {}
    assert fetch_calls["seen"] == [{KEYED}]


async def test_client_only_fetches_stay_unfiltered(fetch_calls: dict[str, Any]) -> None:
    fetch_calls["release"].set()
    await driver.AIOKafkaConsumerThread.getmany(object(), None, 1.0)
    assert fetch_calls["seen"] == [None]


def test_patching_twice_wraps_once(fetch_calls: dict[str, Any]) -> None:
    patched = driver.AIOKafkaConsumerThread.getmany
    _fetch_only_the_partitions_asked_for()
    assert driver.AIOKafkaConsumerThread.getmany is patched
