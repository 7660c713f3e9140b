"""The cluster's detections, as every worker's web view shows them.

Each worker emits the detections of the keys it owns; ``/api/matches`` and ``/api/stream``
show those of the whole cluster. So every worker reads the output topics itself:
:class:`ClusterFeed` is a consumer with **no consumer group** that assigns every partition of
the topics the active rules emit to (``emit.topic`` and ``on_timeout.topic``), follows rule
changes (a hot-swapped rule may emit elsewhere), and reads with ``read_committed`` when the
runtime writes in transactions (exactly_once), so an aborted offer never shows. Its fetches
gather up to ``FETCH_WAIT_MS`` of detections, so a page sees a detection within 0.2 s.

When a partition is assigned, the consumer starts ``seed`` records before its end, so a
worker that just started already has the recent past; those records fill the ring but are
not streamed. A record is "live", and also goes to the SSE subscribers, when it lies at or
after that end, or when it was produced after the feed began to want its topic (a topic
created after its rule was applied is assigned up to a second later: what the rule emitted
in between is news, not history).

:class:`DetectionRing` keeps the newest ``size`` CloudEvents ordered by Kafka record
timestamp (the time the owning worker produced them), drops a detection already held (same
CloudEvent id: at-least-once may send a detection twice), and fans live ones out to
subscribers; a subscriber that does not keep up loses events (counted), never the worker.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError

from agents.rulebook import RuleBook

__all__ = ["ClusterFeed", "DetectionRing", "Subscription", "output_topics", "rule_of"]

log = logging.getLogger("kairos.feed")

RING_SIZE = 1000
"""Detections kept per worker: the largest ``limit`` of ``GET /api/matches``."""
SUBSCRIBER_QUEUE = 1000
"""Detections a slow SSE subscriber may fall behind before it loses some."""
POLL_RECORDS = 500
"""Records handled per turn of the loop, so the worker's event loop is never held long."""
FETCH_WAIT_MS = 200
FETCH_MIN_BYTES = 256 << 10
"""The feed's fetches: the broker answers after ``FETCH_WAIT_MS`` or once this many bytes
are ready. A page reads detections on a human scale; answering at every alert made the
feed fetch once per detection batch (about 100 a second at 1 000 events/s, each a request
the worker and the broker pay for), now at most five a second below 256 KiB of news."""


def rule_of(event: Mapping[str, Any]) -> str | None:
    """The rule of a detection CloudEvent (its ``source`` is ``/kairos/rules/<rule>/v<n>``)."""
    parts = str(event.get("source", "")).split("/")
    if len(parts) >= 4 and parts[1] == "kairos" and parts[2] == "rules":
        return parts[3]
    return None


def output_topics(book: RuleBook) -> set[str]:
    """Topics the active rules send their offers and alerts to."""
    topics: set[str] = set()
    for rule in book.rules.values():
        for action in (rule.emit, rule.on_timeout):
            if action is not None and action.topic:
                topics.add(action.topic)
    return topics


def _wanted(event: Mapping[str, Any], rule: str | None, kind: str | None) -> bool:
    if rule is not None and rule_of(event) != rule:
        return False
    return kind is None or event.get("type") == f"kairos.{kind}" or event.get("kairoskind") == kind


class Subscription:
    """Live detections for one subscriber; registered as soon as it is created."""

    def __init__(self, ring: DetectionRing, queue_size: int) -> None:
        self._ring = ring
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(queue_size)
        self.dropped = 0
        ring._subscribers.add(self)

    def offer(self, event: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.queue.get()

    async def aclose(self) -> None:
        self._ring._subscribers.discard(self)


class DetectionRing:
    """The newest detections (bounded, by record timestamp, one per id) and their subscribers."""

    def __init__(self, size: int = RING_SIZE, queue_size: int = SUBSCRIBER_QUEUE) -> None:
        if size < 1:
            raise ValueError(f"ring size must be at least 1, got {size}")
        self.size = size
        self.queue_size = queue_size
        self.duplicates = 0
        # (timestamp ms, arrival number, rule, event), oldest first; the arrival number is
        # unique, so tuples never compare beyond it.
        self._items: list[tuple[int, int, str | None, dict[str, Any]]] = []
        self._ids: set[Any] = set()
        self._seq = itertools.count()
        self._subscribers: set[Subscription] = set()

    def __len__(self) -> int:
        return len(self._items)

    def add(
        self, timestamp_ms: int, event: dict[str, Any], *, live: bool, rule: str | None = None
    ) -> bool:
        """Keep ``event``; stream it too when ``live``. False when its id is already held.

        ``rule``: the event's rule when the caller knows it already (else read from it)."""
        eid = event.get("id")
        if eid is not None:
            if eid in self._ids:
                self.duplicates += 1
                return False
            self._ids.add(eid)
        item = (timestamp_ms, next(self._seq), rule or rule_of(event), event)
        items = self._items
        if not items or item > items[-1]:
            items.append(item)
        else:
            bisect.insort(items, item)
        if len(items) > self.size:
            oldest = items.pop(0)
            self._ids.discard(oldest[3].get("id"))
        if live:
            for sub in self._subscribers:
                sub.offer(event)
        return True

    def query(self, rule: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first. ``kind``: ``offer``/``alert`` (the action) or ``match``/``timeout``."""
        out: list[dict[str, Any]] = []
        for _ts, _seq, name, event in reversed(self._items):
            if rule is not None and name != rule:
                continue
            if not _wanted(event, None, kind):
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return out

    def subscribe(self) -> Subscription:
        return Subscription(self, self.queue_size)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


def decode_cloudevent(value: bytes | None) -> tuple[str, dict[str, Any]] | None:
    """``(rule, CloudEvent)`` of what a rule emitted; None for anything else on the topic."""
    if not value:
        return None
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        return None
    rule = rule_of(event)
    if rule is None or not str(event.get("type", "")).startswith("kairos."):
        return None
    return rule, event


class ClusterFeed:
    """Follows the output topics of the active rules into a :class:`DetectionRing`.

    ``start()`` then ``run()`` (until ``stop()``); ``query``/``subscribe`` serve the web view.
    """

    METADATA_RETRY_S = 1.0
    """How often topics the rules name but the broker does not have yet are looked up."""
    METADATA_REFRESH_S = 60.0
    """How often partition counts are looked up again (a topic may gain partitions)."""

    def __init__(
        self,
        book: RuleBook,
        client_kwargs: Mapping[str, Any],
        *,
        read_committed: bool,
        size: int = RING_SIZE,
        seed: int | None = None,
    ) -> None:
        self.book = book
        self.ring = DetectionRing(size)
        self.seed = size if seed is None else seed
        self.read_committed = read_committed
        self.skipped = 0
        """Records on the output topics that were not a rule's CloudEvent."""
        self._client_kwargs = dict(client_kwargs)
        self._consumer: AIOKafkaConsumer | None = None
        self._changed = asyncio.Event()
        self._stopping = False
        self._assigned: set[TopicPartition] = set()
        self._live_from: dict[TopicPartition, tuple[int, int]] = {}  # (end offset, since ms)
        self._wanted_since: dict[str, int] = {}  # topic -> wall ms it became wanted
        self._missing: set[str] = set()
        self._looked_up = 0.0
        book.on_change(lambda _book: self._changed.set())

    # -- the web view's side ---------------------------------------------------------------

    def query(self, rule: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
        return self.ring.query(rule, kind, limit)

    def subscribe(self) -> Subscription:
        return self.ring.subscribe()

    @property
    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    @property
    def missing_topics(self) -> set[str]:
        """Topics the rules emit to that the broker did not know at the last look-up."""
        return set(self._missing)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if self.read_committed else "read_uncommitted",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            fetch_min_bytes=FETCH_MIN_BYTES,
            **self._client_kwargs,
        )
        await self._consumer.start()
        self._changed.set()

    async def stop(self) -> None:
        self._stopping = True
        self._changed.set()
        if self._consumer is not None:
            await self._consumer.stop()

    async def run(self) -> None:
        """Follow the rules' output topics until :meth:`stop`; never raises for Kafka trouble."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("ClusterFeed.run() before start(): call `await feed.start()` first")
        while not self._stopping:
            try:
                if self._due():
                    self._changed.clear()
                    await self._follow(output_topics(self.book))
                if not self._assigned:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.METADATA_RETRY_S):
                            await self._changed.wait()
                    continue
                batch = await consumer.getmany(timeout_ms=500, max_records=POLL_RECORDS)
                self.take(batch)
            except ConsumerStoppedError:
                if self._stopping:
                    return
                raise
            except Exception:
                if self._stopping:
                    return
                log.exception("detection feed: reading the output topics failed; retrying in 1 s")
                self._changed.set()  # look the topics up again
                await asyncio.sleep(1.0)

    def _due(self) -> bool:
        if self._changed.is_set():
            return True
        since = time.monotonic() - self._looked_up
        if self._missing:
            return since >= self.METADATA_RETRY_S
        return since >= self.METADATA_REFRESH_S

    # -- assignment ------------------------------------------------------------------------

    async def _partitions(self, topics: Iterable[str]) -> dict[str, set[int]]:
        """Partitions of each topic the broker knows (topics it does not know are left out)."""
        assert self._consumer is not None
        # The consumer's own metadata covers only assigned topics; fetch the cluster's.
        cluster = await self._consumer._client.fetch_all_metadata()
        out: dict[str, set[int]] = {}
        for topic in topics:
            parts = cluster.partitions_for_topic(topic)
            if parts:
                out[topic] = set(parts)
        return out

    async def _follow(self, topics: set[str]) -> None:
        """Assign every partition of ``topics``; kept partitions keep their positions."""
        consumer = self._consumer
        assert consumer is not None
        self._looked_up = time.monotonic()
        now_ms = int(time.time() * 1000)
        self._wanted_since = {t: self._wanted_since.get(t, now_ms) for t in topics}
        known = await self._partitions(topics) if topics else {}
        missing = topics - known.keys()
        if missing != self._missing and missing:
            log.info(
                "detection feed: waiting for output topics to exist",
                extra={"topics": sorted(missing)},
            )
        self._missing = missing
        target = {TopicPartition(t, p) for t, parts in known.items() for p in parts}
        if target == self._assigned:
            return
        kept = self._assigned & target
        positions = {tp: await consumer.position(tp) for tp in kept}
        new = sorted(target - self._assigned)
        consumer.assign(sorted(target))
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        if new:
            begin = await consumer.beginning_offsets(new)
            end = await consumer.end_offsets(new)
            for tp in new:
                consumer.seek(tp, max(begin[tp], end[tp] - self.seed))
                self._live_from[tp] = (end[tp], self._wanted_since[tp.topic])
        for tp in self._assigned - target:
            self._live_from.pop(tp, None)
        self._assigned = target
        log.info(
            "detection feed: following the output topics",
            extra={
                "topics": sorted(known),
                "partitions": len(target),
                "read_committed": self.read_committed,
            },
        )

    # -- records ---------------------------------------------------------------------------

    def take(self, batch: Mapping[TopicPartition, Iterable[Any]]) -> int:
        """Add one poll's records (oldest first by record timestamp); returns how many were kept."""
        rows: list[tuple[int, bool, str, dict[str, Any]]] = []
        for tp, records in batch.items():
            end, since = self._live_from.get(tp, (0, 0))
            for record in records:
                decoded = decode_cloudevent(record.value)
                if decoded is None:
                    self.skipped += 1
                    continue
                live = record.offset >= end or record.timestamp >= since
                rows.append((record.timestamp, live, *decoded))
        if len(batch) > 1:
            rows.sort(key=lambda row: row[0])  # one partition's records are in order already
        add = self.ring.add
        return sum(add(ts, event, live=live, rule=rule) for ts, live, rule, event in rows)
