"""The ingest loop on Kafka, and the time ticks.

A plain aiokafka consumer (group ``<app id>-ingest``) reads the source topics of the active
rules; each poll is routed by :class:`agents.ingest.Ingest` into one message per keyed-topic
partition plus dead letters, produced, and only then are the source offsets committed (at
least once: a crash re-sends the poll, and detect skips the source offsets it already applied).
Polls are pipelined (up to ``MAX_INFLIGHT`` in flight) and committed in order.
Before a rebalance takes partitions away, the polls in flight are settled and their offsets
committed while this member still owns them; a poll's offsets are never committed under a
later assignment than the one it was read in (see :meth:`IngestService._on_revoked`).
Faust's per-message machinery is paid once per partition and poll, not once per event.

The subscription follows the rules: when a rule with a new source topic is applied the
consumer re-subscribes.

Every ``KAIROS_TICK_INTERVAL`` seconds a tick goes to every partition of the keyed topic with
the wall clock and this worker's max event time per rule, so processing-time timeouts fire and
event-time watermarks advance on partitions (and keys) that receive nothing else. While event
times advance, ticks go out more often, every ``KAIROS_WATERMARK_INTERVAL`` seconds: a keyed
partition's watermark is the minimum over all source partitions, so it can only pass an event
once a tick has told it how far the other source partitions got.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from agents.config import RuntimeConfig
from agents.ingest import Ingest, IngestResult
from agents.rulebook import RuleBook
from agents.wire import encode_tick

__all__ = ["IngestService", "TickSchedule", "caught_up"]

log = logging.getLogger("kairos.ingest")

#: Polls produced but not yet acknowledged before the ingest waits for the oldest.
MAX_INFLIGHT = 4
#: Seconds between the ingest's offset commits while records flow. A commit is a request
#: to the group coordinator and a write to ``__consumer_offsets``; committing every poll
#: (about 100 a second under load) cost the worker and the broker more than it protects:
#: after a crash the next owner re-reads at most this much more, and detect skips what it
#: already applied (the progress record), so nothing is detected twice.
COMMIT_INTERVAL = 0.1
#: Broker long-poll (ms) while records flow. aiokafka keeps one fetch per broker in flight,
#: for the partitions without buffered records: a partition whose records were just taken
#: waits for that fetch, so this bounds the wait (the latency floor at low rates).
FETCH_WAIT_BUSY_MS = 5
#: ``fetch_min_bytes`` while records flow and the ingest lingers (``KAIROS_INGEST_LINGER_MS``):
#: more than a fetch ever carries, so the broker holds each fetch for the linger time.
LINGER_MIN_BYTES = 1 << 20
#: Broker long-poll (ms) once no record arrived for ``IDLE_AFTER`` seconds. Then every
#: partition is in the fetch in flight and the broker answers as soon as a record arrives,
#: so the idle ingest sends a tenth of the fetch requests (each costs the worker CPU)
#: without delaying the first record; at most the first poll after the pause can leave a
#: long poll in flight for the other partitions (one wait of up to this long).
FETCH_WAIT_IDLE_MS = 50
IDLE_AFTER = 1.0


class TickSchedule:
    """When the ingest sends a tick: every ``interval`` seconds (the wall clock, for
    processing-time timeouts and idle sources), and every ``watermark_interval`` seconds while
    the max event times move (0: only every ``interval``)."""

    def __init__(self, interval: float, watermark_interval: float) -> None:
        self.interval = interval
        self.step = min(watermark_interval, interval) or interval
        self._sent_at: float | None = None
        self._sent: dict[str, dict[str, int]] = {}

    def due(self, now: float, maxima: dict[str, dict[str, int]]) -> bool:
        """True when a tick goes out now (checked every ``step`` seconds); remembers it."""
        if self._sent_at is None:
            self._sent_at = now - self.step  # the first check is one step after the start
        if now - self._sent_at < self.interval - self.step / 2 and maxima == self._sent:
            return False
        self._sent_at = now
        self._sent = {rule: dict(per_src) for rule, per_src in maxima.items()}
        return True


class IngestService:
    def __init__(
        self,
        settings: RuntimeConfig,
        book: RuleBook,
        keyed_topic: str,
        on_poll: Callable[[IngestResult], None] | None = None,
    ) -> None:
        self.settings = settings
        self.book = book
        self.keyed_topic = keyed_topic
        self.ingest = Ingest(book, settings.partitions)
        self.on_poll = on_poll
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self._sources: tuple[str, ...] = ()
        self._stopping = False
        self.dead_letters = 0
        self._positions: dict[TopicPartition, int] = {}
        self._send_lock = asyncio.Lock()
        #: Polls produced and not yet settled: their sends, offsets and assignment epoch.
        self._inflight: deque[tuple[asyncio.Future[Any], dict[TopicPartition, int], int]] = deque()
        self._acked: dict[TopicPartition, int] = {}  # acknowledged, not committed yet
        self._committed_at = float("-inf")
        self._commit_lock = asyncio.Lock()  # the loop and a revocation settle polls in turn
        #: Bumped by every revocation: offsets read under an older assignment are not
        #: committed any more (the partition may have moved and come back meanwhile).
        self._epoch = 0
        self._failure: BaseException | None = None  # a send that failed during a revocation
        self._listener = _Handover(self)

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(
            acks="all",
            enable_idempotence=True,
            linger_ms=0,
            max_batch_size=1 << 20,
            max_request_size=8 << 20,
            **self.settings.kafka_client_kwargs(),
        )
        await self.producer.start()

    async def stop(self) -> None:
        self._stopping = True
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self._commit_done(wait=True)
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    def _subscribe(self) -> None:
        assert self.consumer is not None
        sources = tuple(sorted(self.book.sources()))
        if sources == self._sources:
            return
        self._sources = sources
        if sources:
            self.consumer.subscribe(list(sources), listener=self._listener)
            log.info("ingest subscribed", extra={"topics": list(sources)})
        else:
            self.consumer.unsubscribe()
            log.warning("no active rule: ingest reads nothing until a rule is applied")

    async def run(self) -> None:
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            group_id=f"{settings.app_id}-ingest",
            session_timeout_ms=int(settings.session_timeout * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval * 1000),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_BUSY_MS,
            max_poll_records=settings.ingest_batch_max,
            max_partition_fetch_bytes=4 << 20,
            metadata_max_age_ms=5000,
            isolation_level="read_committed",
            **settings.kafka_client_kwargs(),
        )
        await self.consumer.start()
        self._set_fetch_wait(busy=True)
        generation = -1
        last_record = time.monotonic()
        idle = False
        while not self._stopping:
            if self._failure is not None:
                raise self._failure
            if generation != self.book.generation:
                generation = self.book.generation
                self._subscribe()
            if not self._sources:
                await asyncio.sleep(0.2)
                continue
            polled = await self.consumer.getmany(
                timeout_ms=100 if not self._inflight else 5, max_records=settings.ingest_batch_max
            )
            if polled:
                last_record = time.monotonic()
                if idle:
                    idle = False
                    self._set_fetch_wait(busy=True)
                await self._process(polled)
            elif not idle and time.monotonic() - last_record >= IDLE_AFTER:
                idle = True
                self._set_fetch_wait(busy=False)
            await self._commit_done()

    def _set_fetch_wait(self, busy: bool) -> None:
        """Set the broker long-poll of the next fetches (aiokafka reads the fetcher's
        ``_fetch_max_wait_ms`` and ``_fetch_min_bytes`` for every fetch request it builds).

        Idle: answer at the first record, or after ``FETCH_WAIT_IDLE_MS``. Busy: after
        ``FETCH_WAIT_BUSY_MS`` at most; with a linger (``KAIROS_INGEST_LINGER_MS``) the broker
        holds every fetch that long, gathering the records of that time into one poll (Kafka's
        ``fetch.min.bytes`` with ``fetch.max.wait.ms``): fewer polls, keyed messages and
        produce requests per event, for up to that much latency."""
        fetcher = getattr(self.consumer, "_fetcher", None)
        if fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
            return
        linger = self.settings.ingest_linger_ms
        if not busy:
            fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes = FETCH_WAIT_IDLE_MS, 1
        elif linger:
            fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes = linger, LINGER_MIN_BYTES
        else:
            fetcher._fetch_max_wait_ms, fetcher._fetch_min_bytes = FETCH_WAIT_BUSY_MS, 1

    async def _process(self, polled: dict[TopicPartition, list]) -> None:
        assert self.producer is not None and self.consumer is not None
        epoch = self._epoch  # the assignment the poll was read in (before any await)
        records = [
            (tp.topic, tp.partition, r.offset, r.key, r.value, r.headers)
            for tp, recs in polled.items()
            for r in recs
        ]
        async with self._send_lock:  # a tick must not overtake this poll's batches
            await self._route_and_send(polled, records, epoch)

    async def _route_and_send(
        self, polled: dict[TopicPartition, list], records: list, epoch: int
    ) -> None:
        assert self.producer is not None and self.consumer is not None
        result = self.ingest.route_poll(records)
        sends = [
            await self.producer.send(self.keyed_topic, builder.encode(), partition=p)
            for p, builder in result.batches.items()
        ]
        for dead in result.dead:
            sends.append(
                await self.producer.send(
                    self.settings.dlq_topic,
                    dead.value,
                    key=dead.key,
                    headers=dead.dlq_headers(),
                )
            )
            log.warning(
                "record dead-lettered",
                extra={
                    "reason": dead.reason,
                    "detail": dead.detail[:500],
                    "topic": dead.topic,
                    "partition": dead.partition,
                    "offset": dead.offset,
                },
            )
        self.dead_letters += len(result.dead)
        offsets = {tp: recs[-1].offset + 1 for tp, recs in polled.items()}
        self._inflight.append((asyncio.gather(*sends), offsets, epoch))
        if self.on_poll is not None:
            self.on_poll(result)

    async def _commit_done(self, wait: bool = False) -> None:
        """Commit the offsets of the polls whose records Kafka has acknowledged, in order.

        Polls are pipelined: the next poll is routed while the previous one is in flight
        (at most ``MAX_INFLIGHT``); offsets are committed only once every record of their
        poll (and of every earlier poll) is acknowledged: at least once. Acknowledged
        offsets are committed at most every ``COMMIT_INTERVAL`` seconds, and at once with
        ``wait`` (the worker stops, or a rebalance is about to take partitions away). A poll
        read under an earlier assignment (``_epoch``) is waited for but not committed.
        """
        assert self.consumer is not None
        async with self._commit_lock:
            acked = self._acked
            inflight = self._inflight
            while inflight and (wait or inflight[0][0].done() or len(inflight) > MAX_INFLIGHT):
                sends, offsets, epoch = inflight.popleft()
                await sends  # raises when a record could not be delivered
                if epoch == self._epoch:
                    acked.update(offsets)
            now = time.monotonic()
            if acked and (wait or now - self._committed_at >= COMMIT_INTERVAL):
                self._acked = {}
                self._committed_at = now
                await self._commit(acked)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Before the group reassigns partitions (Kafka's commit-on-revoke): wait for the
        polls in flight and commit every acknowledged offset while this member still owns
        it, so the next owner starts where this one stopped. Whatever is still unsettled
        afterwards (a poll being routed right now) belongs to the old assignment: it is
        never committed, not even if its partitions come back to this member (their owner
        in between may have committed further). A send that failed stops the ingest, as it
        would in the loop."""
        if not revoked:
            return  # the first join: nothing was read yet
        try:
            await self._commit_done(wait=True)
        except Exception as exc:
            log.error("a keyed batch was not delivered before the rebalance", exc_info=exc)
            self._failure = exc
        finally:
            self._epoch += 1
            self._acked = {}
            log.info(
                "ingest partitions revoked",
                extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)},
            )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        """Commit what this member still owns. After a rebalance took a partition away, its
        new owner re-reads from the last commit and detect skips what it already applied."""
        assert self.consumer is not None
        assigned = self.consumer.assignment()
        mine = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        try:
            if mine:
                await self.consumer.commit(mine)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("ingest commit skipped: the group rebalanced", extra={"reason": str(exc)})
            return
        self._positions.update(mine)

    def lag(self) -> list[tuple[str, int, int]]:
        """``(topic, partition, lag)`` of the source partitions this worker ingests."""
        consumer = self.consumer
        if consumer is None:
            return []
        out = []
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            pos = self._positions.get(tp)
            if high is not None and pos is not None:
                out.append((tp.topic, tp.partition, max(0, high - pos)))
        return out

    def caught_up(self) -> list[str]:
        """The source partitions this ingest owns and has read to the end (see
        :func:`caught_up`); the caller holds the send lock, so every record polled was routed
        and handed to the producer ahead of the tick that carries this list."""
        return [] if self.consumer is None else caught_up(self.consumer)

    async def tick_forever(self) -> None:
        """Send a tick to every keyed partition each interval (wall clock + max event times):
        every ``tick_interval``, and every ``watermark_interval`` while max event times move."""
        assert self.producer is not None
        schedule = TickSchedule(self.settings.tick_interval, self.settings.watermark_interval)
        while not self._stopping:
            await asyncio.sleep(schedule.step)
            if not schedule.due(time.monotonic(), self.ingest.max_ts):
                continue
            try:
                async with self._send_lock:
                    caught = self.caught_up()
                    value = encode_tick(
                        int(time.time() * 1000), self.ingest.max_ts, self.ingest.src_last, caught
                    )
                    futures = [
                        await self.producer.send(self.keyed_topic, value, partition=p)
                        for p in range(self.settings.partitions)
                    ]
                await asyncio.gather(*futures)
            except Exception:
                log.exception("tick not sent")


class _Handover(ConsumerRebalanceListener):  # type: ignore[misc]
    """The ingest's rebalance listener: settles and commits before partitions move."""

    def __init__(self, service: IngestService) -> None:
        self.service = service

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.service._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass


def caught_up(consumer: AIOKafkaConsumer) -> list[str]:
    """The assigned partitions (``"topic:partition"``) that ``consumer`` has read to the end:
    its position reached the last known high watermark (so a partition with an open
    transaction is not read to the end). Only these may become idle for the event-time
    watermark (:mod:`agents.detect`): a stopped or crashed ingest declares nothing, and its
    partitions keep holding the watermark back.

    Synchronous on purpose (the tick holds the ingest's send lock while it asks): it reads
    the position aiokafka's ``position()`` returns when it is known, without its wait for a
    position being reset, and leaves such a partition out."""
    try:
        assignment = consumer._subscription.subscription.assignment
    except AttributeError:  # no subscription or no assignment yet
        return []
    out = []
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is None:
            continue  # not fetched yet
        try:
            state = assignment.state_value(tp)
        except (KeyError, AttributeError):
            continue
        if state is not None and state.has_valid_position and state.position >= high:
            out.append(f"{tp.topic}:{tp.partition}")
    return sorted(out)
