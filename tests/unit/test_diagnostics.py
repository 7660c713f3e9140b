"""The worker's state dump: task stacks, Faust's recovery state, SIGUSR1 and the stall check."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter
from typing import Any

import pytest
from faust.types import TP

from app import diagnostics

CL = "app-state-changelog"


class FakeRecovery:
    def __init__(self, *, in_recovery: bool, remaining: int, started: float | None) -> None:
        self.in_recovery = in_recovery
        self.completed = asyncio.Event()
        self._generation_id = 2
        self._recovery_started_at = started
        self._active_events_received_at: dict[TP, float] = {}
        self.active_tps = {TP(CL, 2)}
        self.standby_tps: set[TP] = set()
        self.active_highwaters = Counter({TP(CL, 2): 41})
        self.active_offsets = Counter({TP(CL, 2): 41 - remaining})

    def active_remaining(self) -> Counter[TP]:
        return Counter(
            {tp: self.active_highwaters[tp] - o for tp, o in self.active_offsets.items()}
        )

    def need_recovery(self) -> bool:
        return any(v > 0 for v in self.active_remaining().values())


class FakeTables:
    def __init__(self, recovery: FakeRecovery) -> None:
        self.recovery = recovery
        self.changelog_queue = asyncio.Queue()


class FakeApp:
    """Recovery state only: reading the consumer's fails, which the dump must survive."""

    def __init__(self, recovery: FakeRecovery) -> None:
        self.tables = FakeTables(recovery)
        self.tasks: list[Any] = []

    @property
    def consumer(self) -> Any:
        raise RuntimeError("consumer not started")

    def task(self, fun: Any) -> Any:
        self.tasks.append(fun)
        return fun


def test_stalled_only_when_recovery_needs_records_and_none_came_for_the_threshold() -> None:
    now = time.monotonic()
    rec = FakeRecovery(in_recovery=True, remaining=5, started=now - 31)
    app = FakeApp(rec)
    assert diagnostics.stalled(app, now)  # nothing received since the start, 31 s ago
    rec._active_events_received_at[TP(CL, 2)] = now - 10
    assert not diagnostics.stalled(app, now)  # a record 10 s ago: progressing
    rec._active_events_received_at[TP(CL, 2)] = now - 30
    assert diagnostics.stalled(app, now)
    assert not diagnostics.stalled(
        FakeApp(FakeRecovery(in_recovery=False, remaining=5, started=now - 99)), now
    )
    assert not diagnostics.stalled(
        FakeApp(FakeRecovery(in_recovery=True, remaining=0, started=now - 99)), now
    )


async def test_task_stacks_follow_the_await_chain_to_the_blocking_future() -> None:
    gate = asyncio.Event()

    async def inner_wait_for_gate() -> None:
        await gate.wait()

    async def outer() -> None:
        await inner_wait_for_gate()

    task = asyncio.create_task(outer(), name="blocked-task")
    await asyncio.sleep(0)
    try:
        [entry] = [s for s in diagnostics.task_stacks() if s.startswith("blocked-task")]
        lines = entry.splitlines()
        assert [line.rsplit(" ", 1)[-1] for line in lines[1:4]] == [
            "outer",
            "inner_wait_for_gate",
            "wait",
        ]
        assert lines[-1].startswith("waits on <Future pending")
    finally:
        gate.set()
        await task


async def test_dump_logs_recovery_state_and_reports_what_it_cannot_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = FakeRecovery(in_recovery=True, remaining=3, started=time.monotonic() - 40)
    with caplog.at_level(logging.WARNING, logger="kairos.diagnostics"):
        diagnostics.dump(FakeApp(rec), "test")
    [record] = caplog.records
    assert record.getMessage() == "worker state dump"
    assert record.reason == "test"
    recovery = record.state["recovery"]
    assert recovery["in_recovery"] is True
    assert recovery["remaining"] == {f"{CL}:2": 3}
    assert recovery["highwaters"] == {f"{CL}:2": 41}
    assert recovery["seconds_since_start"] >= 40
    assert record.state["consumer"].startswith("unreadable: RuntimeError('consumer not started'")
    assert any("test_dump_logs_recovery_state" in stack for stack in record.tasks)


async def test_installed_task_dumps_on_sigusr1_and_once_per_stalled_recovery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(diagnostics, "CHECK_EVERY", 0.01)
    rec = FakeRecovery(in_recovery=True, remaining=3, started=time.monotonic() - 60)
    app = FakeApp(rec)
    diagnostics.install(app)
    [fun] = app.tasks
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(fun())
    try:
        with caplog.at_level(logging.WARNING, logger="kairos.diagnostics"):
            await asyncio.sleep(0.2)
            reasons = [r.reason for r in caplog.records]
            assert reasons == ["table recovery received no changelog record for 30 s"]
            os.kill(os.getpid(), signal.SIGUSR1)
            await asyncio.sleep(0.1)
            assert [r.reason for r in caplog.records][1:] == ["SIGUSR1"]
            rec._recovery_started_at = time.monotonic() - 45  # a new recovery, stalled again
            await asyncio.sleep(0.1)
            assert [r.reason for r in caplog.records].count(reasons[0]) == 2
    finally:
        task.cancel()
        loop.remove_signal_handler(signal.SIGUSR1)
        await asyncio.gather(task, return_exceptions=True)
