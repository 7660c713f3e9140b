"""Readiness watchdog and the per-second history behind the dashboard chart.

:class:`Monitor` runs one small task per worker (one tick a second): it samples
the running totals of :mod:`app.metrics` into a ring buffer, and asks the
provider whether the worker is ready. Not ready for longer than the stall limit
is reported by ``/readyz`` and logged (again every stall period while it lasts),
so a recovery that hangs is never silent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.metrics import KairosMetrics, Totals
from app.web.provider import StateProvider

__all__ = ["Monitor", "Readiness"]

log = logging.getLogger("kairos.web")


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    reason: str
    stalled: bool
    not_ready_for: float
    """Seconds since the worker was last ready (or started), 0 when ready."""


class Monitor:
    """Samples totals once a second and watches readiness."""

    def __init__(
        self,
        provider: StateProvider,
        metrics: KairosMetrics,
        *,
        stall_seconds: float,
        history_seconds: int = 600,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.provider = provider
        self.metrics = metrics
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._wall = wall
        self._samples: deque[tuple[float, Totals]] = deque(maxlen=history_seconds + 1)
        self._unready_since: float | None = clock()
        self._last_stall_log: float | None = None

    # -- readiness ---------------------------------------------------------------------------

    def readiness(self) -> Readiness:
        """Ask the provider; track how long the worker has not been ready."""
        try:
            ready, reason = self.provider.ready()
        except Exception as exc:  # a broken provider must show up here, not as a 500
            ready, reason = False, f"readiness check failed: {exc.__class__.__name__}: {exc}"
        now = self._clock()
        if ready:
            if self._unready_since is not None:
                log.info("worker ready", extra={"after_s": round(now - self._unready_since, 3)})
            self._unready_since = None
            self._last_stall_log = None
            return Readiness(True, "", False, 0.0)
        if self._unready_since is None:
            self._unready_since = now
        waited = now - self._unready_since
        stalled = waited > self.stall_seconds
        if stalled and (
            self._last_stall_log is None or now - self._last_stall_log >= self.stall_seconds
        ):
            self._last_stall_log = now
            log.warning(
                "recovery stalled: not ready for %.0f s (limit %.0f s): %s",
                waited,
                self.stall_seconds,
                reason or "no reason given",
                extra={"not_ready_for_s": round(waited, 1), "reason": reason},
            )
        return Readiness(False, reason or "not ready", stalled, waited)

    # -- history -------------------------------------------------------------------------------

    def sample(self) -> None:
        """Record the running totals now."""
        self._samples.append((self._wall(), self.metrics.totals()))

    def series(self, seconds: int) -> list[dict[str, Any]]:
        """Per-interval deltas over the last ``seconds``: ``{"t", "events", "matches", "timeouts"}``.

        ``t`` is the end of the interval (epoch seconds); counts are per second.
        """
        samples = list(self._samples)[-(seconds + 1) :]
        out: list[dict[str, Any]] = []
        for (t0, a), (t1, b) in itertools.pairwise(samples):
            span = max(t1 - t0, 1e-6)
            out.append(
                {
                    "t": round(t1, 3),
                    "events": round((b.events - a.events) / span, 3),
                    "matches": round((b.matches - a.matches) / span, 3),
                    "timeouts": round((b.timeouts - a.timeouts) / span, 3),
                }
            )
        return out

    async def run(self, interval: float = 1.0) -> None:
        """Sample and check readiness every ``interval`` seconds until cancelled."""
        while True:
            self.sample()
            self.readiness()
            await asyncio.sleep(interval)
