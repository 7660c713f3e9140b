"""Prometheus metrics of a Kairos worker: one registry, every name prefixed ``kairos_``.

The runtime updates them through :data:`METRICS` (a :class:`KairosMetrics`) once
per batch, never per event: every method takes a count.

    from app.metrics import METRICS
    METRICS.events_in("flight-events", len(batch))
    METRICS.detections("rebooking-offer", matches=2, timeouts=1)
    METRICS.observe_latency(0.012)

``GET /metrics`` serves :func:`render` (Prometheus text format).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "METRICS", "KairosMetrics", "LagSource", "Totals", "render"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

M = TypeVar("M", Counter, Gauge)

#: Returns ``(topic, partition, lag)`` for every partition this worker consumes.
LagSource = Callable[[], Iterable[tuple[str, int, int]]]

# Seconds: from 1 ms to 30 s, where stream-processing latencies live.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass(frozen=True, slots=True)
class Totals:
    """Process-wide running totals (all topics and rules), read by the dashboard sampler."""

    events: int
    matches: int
    timeouts: int
    late: int
    dlq: int


class _LagCollector(Collector):
    """Computes ``kairos_consumer_lag`` at scrape time from the runtime's lag source."""

    def __init__(self) -> None:
        self.source: LagSource | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "kairos_consumer_lag",
            "Messages between the committed position and the high-water mark, per partition.",
            labels=["topic", "partition"],
        )
        source = self.source
        if source is not None:
            try:
                rows = list(source())
            except Exception:  # a scrape must not fail because the consumer is rebalancing
                rows = []
            for topic, partition, lag in rows:
                family.add_metric([topic, str(partition)], float(lag))
        yield family


class _Labelled(Generic[M]):
    """A one-label metric with its children cached (``labels()`` takes a lock per call)."""

    __slots__ = ("children", "metric")

    def __init__(self, metric: M) -> None:
        self.metric: M = metric
        self.children: dict[str, M] = {}

    def __call__(self, label: str) -> M:
        child = self.children.get(label)
        if child is None:
            child = self.children[label] = self.metric.labels(label)
        return child


class KairosMetrics:
    """All ``kairos_*`` metrics, with cheap batch-sized update methods."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._events_in = _Labelled[Counter](
            Counter("kairos_events_in", "Events read from source topics.", ["topic"], registry=r)
        )
        self._matches = _Labelled[Counter](
            Counter("kairos_matches", "Complete matches emitted, per rule.", ["rule"], registry=r)
        )
        self._timeouts = _Labelled[Counter](
            Counter(
                "kairos_timeouts", "Partial matches that timed out, per rule.", ["rule"], registry=r
            )
        )
        self._late = _Labelled[Counter](
            Counter(
                "kairos_late_events",
                "Events older than the watermark (reported, not dropped), per rule.",
                ["rule"],
                registry=r,
            )
        )
        self._dlq = _Labelled[Counter](
            Counter(
                "kairos_dlq_messages",
                "Messages sent to the dead-letter topic, per reason.",
                ["reason"],
                registry=r,
            )
        )
        self._partial = _Labelled[Gauge](
            Gauge(
                "kairos_partial_matches",
                "Partial matches held by this worker, per rule.",
                ["rule"],
                registry=r,
            )
        )
        self._latency = Histogram(
            "kairos_processing_latency_seconds",
            "From the ingest routing a batch's oldest event to the end of its processing "
            "(one sample per keyed-topic message).",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._keyed_wait = Histogram(
            "kairos_keyed_wait_seconds",
            "From the ingest sending a keyed-topic message (its Kafka timestamp) to the detect "
            "agent starting on it: the repartition hop through Kafka and the worker's consumer.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._lag = _LagCollector()
        r.register(self._lag)
        self._lock = threading.Lock()
        self._totals = [0, 0, 0, 0, 0]  # events, matches, timeouts, late, dlq

    def with_process_collectors(self) -> KairosMetrics:
        """Add the standard ``process_*`` and ``python_*`` metrics (CPU, memory, fds)."""
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        return self

    # -- updates (one call per batch) ------------------------------------------------------

    def events_in(self, topic: str, count: int = 1) -> None:
        """``count`` events were read from ``topic``."""
        if count:
            self._events_in(topic).inc(count)
            with self._lock:
                self._totals[0] += count

    def detections(self, rule: str, *, matches: int = 0, timeouts: int = 0, late: int = 0) -> None:
        """Detections of one rule in one batch."""
        if matches:
            self._matches(rule).inc(matches)
        if timeouts:
            self._timeouts(rule).inc(timeouts)
        if late:
            self._late(rule).inc(late)
        if matches or timeouts or late:
            with self._lock:
                self._totals[1] += matches
                self._totals[2] += timeouts
                self._totals[3] += late

    def dlq(self, reason: str, count: int = 1) -> None:
        """``count`` messages went to the dead-letter topic for ``reason`` (a short code)."""
        if count:
            self._dlq(reason).inc(count)
            with self._lock:
                self._totals[4] += count

    def set_partial_matches(self, rule: str, count: int) -> None:
        """Partial matches of ``rule`` currently held by this worker."""
        self._partial(rule).set(count)

    def observe_latency(self, seconds: float) -> None:
        """Processing latency of one batch (its oldest message)."""
        self._latency.observe(seconds)

    def observe_keyed_wait(self, seconds: float) -> None:
        """Time a keyed-topic message spent between the ingest's send and the detect agent."""
        self._keyed_wait.observe(seconds)

    def set_lag_source(self, source: LagSource | None) -> None:
        """Install the function that reports consumer lag at scrape time."""
        self._lag.source = source

    # -- reads -------------------------------------------------------------------------------

    def totals(self) -> Totals:
        """Running totals since the process started."""
        with self._lock:
            return Totals(*self._totals)

    def render(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)


METRICS = KairosMetrics().with_process_collectors()


def render() -> bytes:
    """:data:`METRICS` in Prometheus text format."""
    return METRICS.render()
