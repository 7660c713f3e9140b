"""The long-poll of Faust's consumer: short while records arrive, long once the topic is idle."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from faust.transport.drivers import aiokafka as driver

from app.faust_app import (
    FAUST_FETCH_MAX_WAIT_IDLE_MS,
    FAUST_FETCH_MAX_WAIT_MS,
    FAUST_IDLE_AFTER_EMPTY_FETCHES,
    AdaptiveFetchWait,
    _fetch_only_the_partitions_asked_for,
)


class FakeFetcher:
    """An aiokafka Fetcher's two members the wait uses: the wait, and one fetch's handling
    (returns whether it added records)."""

    def __init__(self, results: list[bool]) -> None:
        self._fetch_max_wait_ms = FAUST_FETCH_MAX_WAIT_MS
        self._results = iter(results)
        self.calls: list[tuple[Any, ...]] = []

    async def _proc_fetch_request(self, assignment: Any, node_id: int, request: Any) -> bool:
        self.calls.append((assignment, node_id, request))
        return next(self._results)


async def fetch(fetcher: FakeFetcher, n: int = 1) -> list[bool]:
    return [await fetcher._proc_fetch_request("assignment", 1, "request") for _ in range(n)]


async def test_the_wait_turns_long_after_empty_fetches_and_short_at_the_first_records() -> None:
    idle = FAUST_IDLE_AFTER_EMPTY_FETCHES
    results = [True] + [False] * (idle - 1) + [False, False, True, False]
    fetcher = FakeFetcher(results)
    AdaptiveFetchWait(fetcher)
    assert await fetch(fetcher) == [True]
    assert fetcher._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_MS
    await fetch(fetcher, idle - 1)
    assert fetcher._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_MS  # one empty fetch short
    await fetch(fetcher)
    assert fetcher._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_IDLE_MS
    await fetch(fetcher)
    assert fetcher._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_IDLE_MS
    assert await fetch(fetcher) == [True]  # the wrapped result goes back to aiokafka
    assert fetcher._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_MS
    await fetch(fetcher)  # the count starts again after records
    assert fetcher._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_MS
    assert fetcher.calls[0] == ("assignment", 1, "request")
    assert FAUST_FETCH_MAX_WAIT_MS < FAUST_FETCH_MAX_WAIT_IDLE_MS


async def test_faust_s_first_poll_installs_the_wait_once(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
        await asyncio.sleep(0)
        return {}

    thread_cls = driver.AIOKafkaConsumerThread
    monkeypatch.setattr(thread_cls, "getmany", fake_getmany)
    monkeypatch.setattr(thread_cls, "_kairos_fetch_snapshot", False, raising=False)
    _fetch_only_the_partitions_asked_for()

    class Thread:
        def __init__(self) -> None:
            self._consumer = type("Consumer", (), {"_fetcher": FakeFetcher([False])})()

    thread = Thread()
    fetcher = thread._consumer._fetcher
    await thread_cls.getmany(thread, None, 1.0)
    installed = fetcher._kairos_adaptive_wait
    assert isinstance(installed, AdaptiveFetchWait)
    wrapped = fetcher._proc_fetch_request
    await thread_cls.getmany(thread, None, 1.0)
    assert fetcher._kairos_adaptive_wait is installed
    assert fetcher._proc_fetch_request is wrapped  # not wrapped twice
    await thread_cls.getmany(object(), None, 1.0)  # before the consumer started: nothing
