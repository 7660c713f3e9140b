"""Readiness tracking (a stalled recovery is reported and logged) and the rate history."""

from __future__ import annotations

import logging

import pytest

from app.metrics import KairosMetrics
from app.web.monitor import Monitor
from tests.unit.web.fake import FakeProvider


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_stalled_recovery_is_reported_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    fake, clock = FakeProvider(), Clock()
    fake.is_ready = (False, "recovering kairos-state")
    monitor = Monitor(fake, KairosMetrics(), stall_seconds=60, clock=clock, wall=clock)
    caplog.set_level(logging.INFO, "kairos.web")

    clock.now += 59
    state = monitor.readiness()
    assert (state.ready, state.stalled, state.reason) == (False, False, "recovering kairos-state")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    clock.now += 2
    state = monitor.readiness()
    assert state.stalled and state.not_ready_for == pytest.approx(61)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "recovering kairos-state" in warnings[0].getMessage()

    clock.now += 10  # still stalled: not logged again until another stall period passed
    monitor.readiness()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    clock.now += 60
    monitor.readiness()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2

    fake.is_ready = (True, "")
    assert monitor.readiness().ready
    assert "worker ready" in caplog.records[-1].getMessage()


def test_provider_failure_is_not_ready() -> None:
    fake = FakeProvider()

    def broken() -> tuple[bool, str]:
        raise RuntimeError("no consumer")

    fake.ready = broken  # type: ignore[method-assign]
    state = Monitor(fake, KairosMetrics(), stall_seconds=60).readiness()
    assert not state.ready and "no consumer" in state.reason


def test_series_gives_rates_per_second() -> None:
    metrics, clock = KairosMetrics(), Clock()
    monitor = Monitor(FakeProvider(), metrics, stall_seconds=60, clock=clock, wall=clock)
    monitor.sample()
    metrics.events_in("t", 500)
    metrics.detections("r", matches=4, timeouts=2)
    clock.now += 2
    monitor.sample()
    assert monitor.series(60) == [{"t": 1002.0, "events": 250.0, "matches": 2.0, "timeouts": 1.0}]
    assert monitor.series(0) == []
