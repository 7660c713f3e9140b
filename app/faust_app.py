"""The Faust app of a Kairos worker and its wiring.

::

    source topics ──ingest (aiokafka, batches per partition)──▶ <app id>-keyed
        │ unusable ▶ kairos-dlq                                    │ Faust agent ``detect``
    kairos-rules ──▶ RuleBook (every worker)                       ▼
                     verdicts ▶ kairos-rules-status     state table (changelog) + history table
                                                                   │
                                                  CloudEvents ▶ the rules' emit/on_timeout topics

Partition-count rule: the keyed topic and the changelog topics of the ``state`` and
``history`` tables all have ``KAIROS_PARTITIONS`` partitions (Faust requires a table's
changelog to match its source topic). Source topics may have any partition count: the ingest
re-keys every event, so they need not be keyed by the rule's key. ``KAIROS_PARTITIONS`` cannot
change once the topics exist; a different count needs a new ``KAIROS_APP_ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.types import TP
from mode import Service

from agents.actions import to_records
from agents.admin import ensure_topics
from agents.detect import Detector, Outcome
from agents.feed import ClusterFeed
from agents.ingest import IngestResult
from agents.ingest_service import IngestService
from agents.provider import RuntimeProvider
from agents.rulebook import RuleBook
from agents.rules_service import RulesService
from agents.wire import decode, partition_for
from agents.writer import StateWriter
from app.diagnostics import install as install_diagnostics
from app.logging import logging_config
from app.metrics import METRICS
from app.settings import Settings
from app.transactions import (
    TransactionLost,
    commit_transactions_between_messages,
    drop_transaction,
    gates_of,
    has_transaction,
    lost_transaction,
    request_rejoin,
    retire_producer,
    transactional_id,
)
from tables.definitions import (
    HISTORY_TABLE,
    STATE_TABLE,
    define_history_table,
    define_state_table,
)

__all__ = ["Runtime", "create_runtime"]

log = logging.getLogger("kairos.worker")

#: Broker long-poll of the worker's Faust consumer (ms) while records arrive; Faust hard-codes
#: 1500 ...
FAUST_FETCH_MAX_WAIT_MS = 10
#: ... and after this many fetches in a row came back empty (see AdaptiveFetchWait) ...
FAUST_IDLE_AFTER_EMPTY_FETCHES = 10
#: ... this long.
FAUST_FETCH_MAX_WAIT_IDLE_MS = 250
#: at_least_once: the detect agent flushes its table writes at least this often (seconds) ...
STATE_FLUSH_INTERVAL = 0.5
#: ... and after this many keyed-topic messages (see agents/writer.py).
STATE_FLUSH_MESSAGES = 500
#: A source partition may count as idle only while its ingest said, in a tick of the last
#: this many tick intervals, that it read it to the end (agents/detect.py): a stopped or
#: crashed ingest's partitions hold the event-time watermark back instead of going idle.
CAUGHT_TICKS = 3
#: exactly_once: seconds a keyed partition paused by a lost transaction waits for the
#: rebalance it asked for before the worker asks again.
LOST_REJOIN_INTERVAL = 10.0


@dataclass
class Runtime:
    """Everything one worker runs; ``app`` is what ``faust worker`` / ``kairos worker`` start."""

    settings: Settings
    app: faust.App
    book: RuleBook
    detector: Detector
    rules_service: RulesService
    ingest: IngestService
    feed: ClusterFeed
    provider: RuntimeProvider
    writer: StateWriter
    #: Keyed partitions whose messages the detect agent skips until they are assigned again:
    #: revoked, or (exactly_once) their transaction was lost.
    paused: set[int] = field(default_factory=set)
    #: exactly_once: keyed partitions paused by a lost transaction, and since when (monotonic).
    lost: dict[int, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(
            lambda: {"events": 0, "matches": 0, "timeouts": 0, "late": 0}
        )
    )

    @property
    def keyed_topic(self) -> str:
        return f"{self.settings.app_id}-keyed"


def _credentials(settings: Settings) -> Any:
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(settings.ssl_context())
    return faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password,
        mechanism=settings.sasl_mechanism,
        ssl_context=settings.ssl_context(),
    )


def _shorten_faust_fetch_wait() -> None:
    """Make Faust's consumer long-poll 10 ms instead of 1500 ms.

    faust-streaming's aiokafka driver creates its consumer with ``fetch_max_wait_ms=1500``
    and no setting to change it. Measured on the keyed topic (batches every few ms, a tick per
    second): broker → agent p50 370 ms with 1500, 9 ms with 10. The fetcher is built in
    ``start()`` from ``_fetch_max_wait_ms``, so setting it on the new consumer is enough.
    """
    from faust.transport.drivers import aiokafka as driver

    thread_cls = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_kairos_fetch_wait", False):
        return
    original = thread_cls._create_worker_consumer

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FAUST_FETCH_MAX_WAIT_MS
        return consumer

    thread_cls._create_worker_consumer = create  # type: ignore[method-assign]
    thread_cls._kairos_fetch_wait = True  # type: ignore[attr-defined]


def _fetch_only_the_partitions_asked_for() -> None:
    """Make each of Faust's fetches return records only of the partitions active when it began.

    faust-streaming 0.15 hands its fetch the consumer's live set of active partitions, and
    aiokafka's ``fetched_records`` returns the records of *every* assigned partition when that
    set is empty. A fetch started before a rebalance waits through it; the rebalance pauses
    every partition, which empties the set. When the worker kept partitions, recovery then
    seeks their changelog partitions to where it reads from, and records fetched from there
    came back through that fetch while the flow was still stopped: Faust drops a batch fetched
    while the flow is stopped and seeks only the stream partitions back to their committed
    offsets, so the changelog records were consumed and never read again. Recovery waited for
    them forever ("No event received for active tp"; docs/runtime.md, "Limits, known").
    A copy of the set, taken when the fetch begins, is never empty (Faust fetches only with
    active partitions) and keeps the fetch to the partitions it was asked for.

    The same wrapper gives the consumer's fetcher its :class:`AdaptiveFetchWait` (once, on
    Faust's first poll: the fetcher exists only once the consumer has started).
    """
    from faust.transport.drivers import aiokafka as driver

    thread_cls = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_kairos_fetch_snapshot", False):
        return
    original = thread_cls.getmany

    async def getmany(self: Any, active_partitions: Any, timeout: float) -> Any:
        asked = None if active_partitions is None else frozenset(active_partitions)
        fetcher = getattr(getattr(self, "_consumer", None), "_fetcher", None)
        if fetcher is not None and not hasattr(fetcher, "_kairos_adaptive_wait"):
            fetcher._kairos_adaptive_wait = AdaptiveFetchWait(fetcher)
        return await original(self, asked, timeout)

    thread_cls.getmany = getmany  # type: ignore[method-assign]
    thread_cls._kairos_fetch_snapshot = True  # type: ignore[attr-defined]


class AdaptiveFetchWait:
    """Lengthen the broker long-poll of Faust's consumer while the keyed topic is idle.

    The short wait (``FAUST_FETCH_MAX_WAIT_MS``) exists for an aiokafka trait: one fetch per
    broker is in flight, and a partition whose records were still buffered when it was sent
    is not in it, so that partition's next records wait for the fetch to come back (broker →
    agent p50 370 ms with Faust's 1500 ms). But 100 fetches a second were most of an idle
    worker's CPU (~10-15 % of a core). After ``FAUST_IDLE_AFTER_EMPTY_FETCHES`` empty fetches
    in a row no records are buffered, so the fetch in flight asks for every partition and
    the broker answers it at the first record: the long wait delays nothing. The first fetch
    that brings records sets the short wait again, for the next fetch on.

    Installed on one aiokafka ``Fetcher`` (wraps its ``_proc_fetch_request``, which returns
    whether it added records); runs in the consumer's thread.
    """

    def __init__(self, fetcher: Any) -> None:
        self.fetcher = fetcher
        self.empty = 0
        original = fetcher._proc_fetch_request

        async def proc_fetch_request(*args: Any, **kwargs: Any) -> Any:
            added = await original(*args, **kwargs)
            self.observe(bool(added))
            return added

        fetcher._proc_fetch_request = proc_fetch_request

    def observe(self, added: bool) -> None:
        """One fetch came back, with records (``added``) or without."""
        if added:
            self.empty = 0
            self.fetcher._fetch_max_wait_ms = FAUST_FETCH_MAX_WAIT_MS
        else:
            self.empty += 1
            if self.empty >= FAUST_IDLE_AFTER_EMPTY_FETCHES:
                self.fetcher._fetch_max_wait_ms = FAUST_FETCH_MAX_WAIT_IDLE_MS


def _recover_to_the_last_stable_offset() -> None:
    """Make Faust's table recovery ask the broker where each changelog ends.

    Under exactly_once, faust-streaming 0.15 takes a changelog partition's recovery target
    from ``AIOKafkaConsumer.last_stable_offset()``: the value seen in the consumer's last
    fetch response, ``None`` before the first fetch (Faust then takes -1, "empty") and stale
    after it. A worker taking over partitions thus restored nothing or a prefix of the state
    table, and the events replayed after the crash ran on fresh engine states: a key whose
    first stage was applied before the crash never completed its match, so its offer was lost
    (the killed worker's aborted transaction held it, visible only to ``read_uncommitted``).
    ``end_offsets`` sends a ListOffsets request with the consumer's isolation level; with
    ``read_committed`` the broker answers the last stable offset as of now, which is every
    committed changelog record (a transaction still open belongs to a fenced producer and is
    aborted). With at_least_once Faust already calls ``end_offsets``.
    """
    from faust.transport.drivers import aiokafka as driver

    thread_cls = driver.AIOKafkaConsumerThread
    if getattr(thread_cls, "_kairos_highwaters", False):
        return

    async def highwaters(self: Any, partitions: list[Any]) -> Any:
        return await self._ensure_consumer().end_offsets(partitions)

    thread_cls._highwaters = highwaters  # type: ignore[method-assign]
    thread_cls._kairos_highwaters = True  # type: ignore[attr-defined]


def _seek_streams_before_delivery() -> None:
    """Make Faust position the stream partitions before any of their messages is delivered.

    When a worker has recovered its tables, faust-streaming 0.15 resumes the stream
    (keyed-topic) partitions while its flow is already running (recovery started it to read
    the changelogs), then seeks them to the committed offsets, then clears every stream queue
    (``flow_control.resume()``) and only then calls ``resume_flow()``. A message fetched in
    between reaches the detect agent's queue and is cleared, while the consumer has moved
    past it: ``seek_to_committed`` leaves a partition without a committed offset where it is,
    and a fetch made after the seek is cleared as well. Faust then takes the skipped offsets
    for a gap, acks them, and commits over them. After a crash under exactly_once those are
    the messages whose offers were in the killed worker's aborted transaction: they were
    never replayed, so the offers were lost.

    Invariant: delivery is stopped while the stream partitions are positioned, and every
    assigned stream partition ends at its committed offset, or (none committed) at the
    ``consumer_auto_offset_reset`` position, with the read offsets to match. Faust calls
    ``perform_seek`` from recovery, which resumes the flow only after the queue clear, and
    from ``getmany`` when the flow is already stopped, so no message fetched from an older
    position is processed and none between the committed offset and the first delivered
    one is skipped.
    """
    from faust.transport.consumer import Consumer, ensure_TP

    if getattr(Consumer, "_kairos_seek", False):
        return

    async def perform_seek(self: Any) -> None:
        # From recovery the flow runs: stop it (the caller resumes it after the queue clear).
        # From getmany it is already stopped: never stop it here then, or a recovery that
        # resumed the flow meanwhile to read the changelogs would wait for records forever.
        if self.flow_active:
            self.stop_flow()
        committed = await self.seek_to_committed()
        changelogs = self.app.tables.changelog_topics
        unpositioned = [
            tp
            for tp, offset in committed.items()
            if (offset is None or offset < 0) and tp.topic not in changelogs
        ]
        # What Faust's own perform_seek records.
        self._read_offset.update(
            {
                tp: offset if offset is not None and offset >= 0 else None
                for tp, offset in committed.items()
            }
        )
        self._committed_offset.update(
            {
                ensure_TP(tp): offset if offset else None
                for tp, offset in committed.items()
                if offset is not None
            }
        )
        if not unpositioned:
            return
        reset = self.app.conf.consumer_auto_offset_reset
        if reset == "earliest":
            targets = await self.earliest_offsets(*unpositioned)
        elif reset == "latest":
            targets = await self.highwaters(*unpositioned)
        else:
            return
        for tp, offset in targets.items():
            if offset is not None and offset >= 0:
                await self.seek(tp, offset)

    Consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    Consumer._kairos_seek = True  # type: ignore[attr-defined]


def _faust_app(settings: Settings) -> faust.App:
    views = settings.web_faust_views
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{b.strip()}" for b in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        store=settings.store,
        datadir=settings.data_dir,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        table_standby_replicas=settings.standby_replicas,
        processing_guarantee=settings.processing_guarantee,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        web_enabled=True,
        web_bind=settings.web_host,  # Faust binds 0.0.0.0 unless told otherwise
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.canonical_url,
        web_router_enabled=views,
        web_tables_enabled=views,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        logging_config=logging_config(settings.log_level, settings.log_format),
        broker_commit_interval=1.0,
        producer_linger=0.0,
        table_cleanup_interval=3600.0,
        stream_wait_empty=False,
    )


def create_runtime(settings: Settings | None = None, *, with_web: bool = True) -> Runtime:
    """Build the worker: Faust app, tables, the detect agent and the Kafka services."""
    settings = settings or Settings.from_env()
    _shorten_faust_fetch_wait()
    _fetch_only_the_partitions_asked_for()
    _recover_to_the_last_stable_offset()
    _seek_streams_before_delivery()
    commit_transactions_between_messages()
    app = _faust_app(settings)
    install_diagnostics(app)  # SIGUSR1 / a stalled recovery: task stacks + recovery state
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{settings.web_port}"
    book = RuleBook()
    partitions = settings.partitions

    keyed = app.topic(
        f"{settings.app_id}-keyed",
        partitions=partitions,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
    )
    state = define_state_table(app, partitions)
    history = define_history_table(app, partitions)
    tables = {STATE_TABLE: state, HISTORY_TABLE: history}
    detector = Detector(
        book,
        state,
        partitions,
        idle_ms=int(settings.source_idle_timeout * 1000),
        caught_ms=int(CAUGHT_TICKS * settings.tick_interval * 1000),
    )
    feed = ClusterFeed(book, settings.kafka_client_kwargs(), read_committed=settings.exactly_once)
    rules_service = RulesService(settings, book, worker_id)

    def on_poll(result: IngestResult) -> None:
        for topic, count in result.by_topic.items():
            METRICS.events_in(topic, count)
        reasons: dict[str, int] = defaultdict(int)
        for dead in result.dead:
            reasons[dead.reason] += 1
        for reason, count in reasons.items():
            METRICS.dlq(reason, count)
        for rule, count in result.kept_back.items():
            runtime.counts[rule]["events"] += count  # the ones detect never sees

    ingest = IngestService(settings, book, keyed.get_topic_name(), on_poll=on_poll)

    def source_partitions(topic: str) -> int | None:
        """Partitions of a source topic, from the ingest's metadata (None: not known yet)."""
        consumer = ingest.consumer
        parts = consumer.partitions_for_topic(topic) if consumer is not None else None
        return len(parts) if parts else None

    detector.source_partitions = source_partitions

    def readiness() -> tuple[bool, str]:
        if not rules_service.loaded.is_set():
            return False, "loading the rules topic"
        if not app.tables.recovery.completed.is_set():
            return False, "recovering tables from their changelogs"
        if app.rebalancing:
            return False, "consumer group rebalancing"
        return True, ""

    runtime: Runtime
    provider = RuntimeProvider(
        book,
        detector,
        history,
        feed,
        rules_service,
        STATE_TABLE,
        readiness,
        lambda name: dict(runtime.counts[name]),
    )

    async def write(table: str, partition: int, key: bytes, value: bytes | None) -> None:
        _watch(await _write(runtime, tables[table], partition, key, value))

    acker: list[Any] = []  # the agent's manual-ack stream (at_least_once)

    async def ack(event: Any) -> None:
        await acker[-1].ack(event)

    def on_flush() -> None:
        counts = detector.partial_matches()
        for name in set(counts) | set(book.rules):
            METRICS.set_partial_matches(name, counts.get(name, 0))

    writer = StateWriter(
        detector,
        write,
        history.get,
        ack,
        history_size=settings.history_size,
        wait_for_sends=not settings.exactly_once,
        interval=STATE_FLUSH_INTERVAL,
        max_messages=STATE_FLUSH_MESSAGES,
        on_flush=on_flush,
    )
    runtime = Runtime(settings, app, book, detector, rules_service, ingest, feed, provider, writer)
    #: Manual acks: exactly_once (a message is acked inside its transaction's gate, see
    #: app/transactions.py) and coalesced writes (acked by the flush that persists it).
    manual_acks = settings.exactly_once or settings.coalesced_writes
    if settings.exactly_once:
        gates_of(app).on_lost = lambda tid: _on_transaction_lost(runtime, tables, tid)
    app._kairos_state = lambda: _worker_state(runtime)  # in the state dump (app/diagnostics.py)

    @app.agent(keyed, name="kairos-detect")
    async def detect(stream: faust.StreamT) -> None:
        """Per message (exactly_once, and at_least_once unless KAIROS_COALESCE_STATE_WRITES): the
        message is flushed at once. Acks: exactly_once and coalesced, manual (see
        :func:`_handle`); at_least_once per message, Faust's."""
        await rules_service.loaded.wait()
        if manual_acks:
            stream = stream.noack()
            acker.append(stream)
        async for event in stream.events():
            partition = event.message.partition
            if partition in runtime.paused:
                continue  # revoked or its transaction lost: read again after an assignment
            message = decode(event.value)
            async with writer.lock:
                sent = event.message.timestamp  # the ingest's send (CreateTime, seconds)
                if sent:
                    METRICS.observe_keyed_wait(max(0.0, time.time() - sent))
                outcome = await _handle(runtime, partition, message, event if manual_acks else None)
            if outcome is not None:
                _count(runtime, outcome)

    async def on_revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # Every rebalance revokes every partition the worker had (aiokafka's eager protocol),
        # also when the group reset the member without it seeing the partitions move.
        mine = sorted(tp.partition for tp in revoked if tp.topic == runtime.keyed_topic)
        if not mine:
            return
        runtime.paused.update(mine)
        if settings.exactly_once:
            async with writer.lock:  # no message in progress: the agent holds it per message
                await _retire_transactions(runtime, tables, mine)
            return
        async with writer.lock:
            try:
                written = await writer.flush(mine, ack=False)
                log.info(
                    "state flushed on revocation",
                    extra={"partitions": mine, "records": written},
                )
            except Exception:
                log.exception(
                    "state flush on revocation failed; the partitions' messages since the "
                    "last flush will be read again",
                    extra={"partitions": mine},
                )
            for partition in mine:
                writer.drop(partition)
                detector.forget(partition)

    async def on_assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        mine = sorted(tp.partition for tp in assigned if tp.topic == runtime.keyed_topic)
        async with writer.lock:
            for partition in mine:
                writer.drop(partition)
                detector.forget(partition)
            runtime.paused.difference_update(mine)
            runtime.lost.clear()  # this rebalance is what they waited for, wherever they went
        log.info("keyed partitions assigned", extra={"partitions": mine})

    app.on_partitions_revoked.connect(on_revoked)
    app.on_partitions_assigned.connect(on_assigned)

    @app.service
    class KairosServices(Service):
        """Rules, ingest and ticks: started once the tables are recovered."""

        async def on_start(self) -> None:
            await ensure_topics(
                settings,
                [
                    (settings.rules_topic, 1, {"cleanup.policy": "compact"}),
                    (settings.rules_status_topic, 1, {}),
                    (settings.dlq_topic, partitions, {}),
                ],
            )
            await rules_service.start()
            await ingest.start()
            await feed.start()
            self.add_future(rules_service.run())
            self.add_future(feed.run())
            self.add_future(self._start_ingest())
            if settings.coalesced_writes:
                self.add_future(self._flush_forever())
            if settings.exactly_once:
                self.add_future(self._rejoin_while_lost())

        async def _rejoin_while_lost(self) -> None:
            """Ask again for the rebalance a lost transaction needs (its request is a no-op
            when the consumer is already joining): a partition paused by a lost transaction is
            processed only once it is assigned again."""
            while not self.should_stop:
                await asyncio.sleep(LOST_REJOIN_INTERVAL / 2)
                now = time.monotonic()
                waiting = sorted(
                    p for p, t in runtime.lost.items() if now - t >= LOST_REJOIN_INTERVAL
                )
                if waiting and not app.rebalancing:
                    log.warning(
                        "keyed partitions still wait for a rebalance after losing their "
                        "transaction; asking to rejoin the group again",
                        extra={"partitions": waiting},
                    )
                    for partition in waiting:
                        runtime.lost[partition] = now
                    request_rejoin(app)

        async def _flush_forever(self) -> None:
            """Flush the detect agent's writes when no message arrives to do it."""
            while not self.should_stop:
                await asyncio.sleep(writer.interval / 2)
                if writer.due():
                    async with writer.lock:
                        while (due := writer.next_due()) is not None:
                            await _flush(runtime, [due])

        async def _start_ingest(self) -> None:
            await rules_service.loaded.wait()
            await _ensure_output_topics(runtime)
            book.on_change(lambda _book: asyncio.ensure_future(_ensure_output_topics(runtime)))
            self.add_future(ingest.tick_forever())
            log.info(
                "worker running",
                extra={
                    "rules": sorted(book.rules),
                    "sources": sorted(book.sources()),
                    "keyed_topic": runtime.keyed_topic,
                    "partitions": partitions,
                    "guarantee": settings.processing_guarantee,
                    "store": settings.store,
                },
            )
            try:
                await ingest.run()
            except Exception as exc:
                log.exception("ingest failed; stopping the worker")
                await app.crash(exc)

        async def on_stop(self) -> None:
            await ingest.stop()
            if not settings.exactly_once:
                try:  # fewer messages to read again after a restart; no correctness depends on it
                    async with writer.lock:
                        await asyncio.wait_for(writer.flush(), 10)
                except Exception:
                    log.warning("state not flushed at stop", exc_info=True)
            await feed.stop()
            await rules_service.stop()

    if with_web:
        from app.web import WebSettings, install

        install(app, provider, WebSettings.from_settings(settings))
    METRICS.set_lag_source(ingest.lag)
    return runtime


async def _ensure_output_topics(runtime: Runtime) -> None:
    topics = set()
    for rule in runtime.book.rules.values():
        for action in (rule.emit, rule.on_timeout):
            if action is not None and action.topic:
                topics.add(action.topic)
    try:
        await ensure_topics(
            runtime.settings, [(t, runtime.settings.partitions, {}) for t in topics]
        )
    except Exception:
        log.exception("cannot create the output topics", extra={"topics": sorted(topics)})


async def _send_outcome(runtime: Runtime, outcome: Outcome) -> tuple[list[Any], list[Any]]:
    """Send a message's detections and dead letters at once; return the action records and
    the sends' futures (resolved when Kafka has them; at_least_once waits for them before the
    state that produced them is written, see :mod:`agents.writer`). exactly_once: they join
    the keyed partition's transaction."""
    partition = outcome.partition
    records = to_records(outcome.detections)
    futures = [await _send(runtime, partition, r.topic, r.key, r.value, None) for r in records]
    for item, source, error in outcome.failed:
        futures.append(await _dead_letter(runtime, partition, item, source, error))
    return records, futures


async def _handle(
    runtime: Runtime, partition: int, message: Any, event: Any | None
) -> Outcome | None:
    """Apply one keyed-topic message and send what it produced (the caller holds the writer's
    lock). ``event`` is acked by the flush that persists the message (manual acks); None:
    Faust acks it. Per message (exactly_once; at_least_once unless KAIROS_COALESCE_STATE_WRITES)
    that flush happens at once.

    exactly_once: all of it (apply, send, flush, ack) runs under the gate of the partition's
    transaction, so Faust's commit never ends that transaction inside the message. When the
    transaction is lost (:func:`app.transactions.lost_transaction`: fenced, ended, or already
    dropped) the message's work is dropped: not acked, nothing of it committed, and the
    partition is paused until the rebalance that :func:`app.transactions.drop_transaction`
    asks for; returns None then."""
    settings = runtime.settings
    per_message = not settings.coalesced_writes
    tid = None
    gates = gates_of(runtime.app)
    gate: Any = contextlib.nullcontext()
    if settings.exactly_once:
        tid = transactional_id(runtime.app, runtime.keyed_topic, partition)
        gate = gates(tid)
    async with gate:
        epoch = gates.epoch(tid) if tid is not None else 0
        if tid is not None and partition in runtime.paused:
            return None  # its transaction was lost, or it was revoked, while this one waited
        try:
            if tid is not None and not has_transaction(runtime.app, tid):
                raise TransactionLost(f"no transaction for {tid}")
            outcome = Outcome(partition)
            for _ in runtime.detector.steps(partition, message, outcome):
                await asyncio.sleep(0)  # let web lookups in during long batches
            records, sent = await _send_outcome(runtime, outcome)
            runtime.writer.add(partition, sent, ((r.key, r.cloudevent) for r in records), event)
            if per_message:
                await _flush(runtime, [partition])
            elif (due := runtime.writer.next_due()) is not None:
                await _flush(runtime, [due])  # one partition per message: see agents/writer.py
        except Exception as exc:
            if tid is None or not lost_transaction(exc, settings.exactly_once):
                raise
            await drop_transaction(runtime.app, tid, exc, epoch)
            return None
    return outcome


async def _flush(runtime: Runtime, partitions: list[int] | None) -> None:
    """Flush the detect agent's writes (caller holds the writer's lock); a detection Kafka
    refused stops the worker (its state is not written: the replay sends it again). Under
    exactly_once a lost transaction is not a refused detection: it propagates, and the
    caller drops the partition's work (:func:`_handle`)."""
    try:
        await runtime.writer.flush(partitions)
    except Exception as exc:
        if lost_transaction(exc, runtime.settings.exactly_once):
            raise
        log.exception("detections not delivered; stopping the worker")
        await runtime.app.crash(exc)
        raise


def _worker_state(runtime: Runtime) -> dict[str, Any]:
    """The detect agent's own state for the worker state dump (app/diagnostics.py): which
    keyed partitions it skips, whether the writer's lock is held, and (exactly_once) which
    transactions' gates are held and each id's epoch."""
    gates = gates_of(runtime.app)
    return {
        "paused": sorted(runtime.paused),
        "lost": sorted(runtime.lost),
        "writer_locked": runtime.writer.lock.locked(),
        "gates_held": gates.held(),
        "epochs": gates.epochs(),
    }


def _on_transaction_lost(runtime: Runtime, tables: dict[str, Any], tid: str) -> None:
    """exactly_once: a keyed partition's transaction was dropped (:func:`drop_transaction`).
    Pause the partition until its next assignment, forget what the detector and the writer
    hold for it, and discard its local table state (it holds the dropped transaction's
    writes). Synchronous: runs under the transaction's gate, with no other task in between."""
    for partition in range(runtime.settings.partitions):
        if transactional_id(runtime.app, runtime.keyed_topic, partition) == tid:
            break
    else:
        return  # not a keyed partition's transaction
    runtime.paused.add(partition)
    runtime.lost[partition] = time.monotonic()
    runtime.writer.drop(partition)
    runtime.detector.forget(partition)
    _discard_local_state(runtime, tables, partition)


async def _retire_transactions(
    runtime: Runtime, tables: dict[str, Any], partitions: list[int]
) -> None:
    """exactly_once, on revocation (every rebalance revokes every partition): give up each
    keyed partition's transaction and local state, so the partitions assigned next start from
    what the broker committed. Faust keeps the producer of a partition it is assigned again
    and only begins the transaction anew: when another worker held the partition meanwhile
    (this one was a zombie, or reset by the group) that producer is fenced, and the local
    state lacks the other worker's writes and holds the aborted ones. Here every producer is
    retired (:func:`app.transactions.retire_producer`; Faust starts a new one, whose
    initialization aborts what the old one left open) and the local state is discarded and
    recovered from the changelogs (``read_committed``). The work since the last commit is
    done again. The caller holds the writer's lock: no message is in progress; each
    transaction's gate is taken too, so no commit is in progress on a producer retired (a
    commit is bounded by :data:`app.transactions.COMMIT_TIMEOUT`)."""
    gates = gates_of(runtime.app)
    for partition in partitions:
        tid = transactional_id(runtime.app, runtime.keyed_topic, partition)
        async with gates(tid):
            retire_producer(runtime.app, tid)
        runtime.writer.drop(partition)
        runtime.detector.forget(partition)
        _discard_local_state(runtime, tables, partition)


def _key_partition(key: bytes, partitions: int) -> int:
    """The keyed partition a table key belongs to (its entity key's, or the progress record's)."""
    if key.startswith(b"\x00p"):  # progress record: b"\x00p<partition>"
        return int(key[2:])
    try:
        return partition_for(key.decode(), partitions)
    except UnicodeDecodeError:
        return -1  # not a key the worker wrote


def _discard_local_state(runtime: Runtime, tables: dict[str, Any], partition: int) -> None:
    """Delete ``partition``'s keys from the local stores of the tables and make Faust's next
    recovery read the partition's changelogs from their start (``read_committed``: exactly
    what the transactions committed). Faust keeps a table partition's recovery offset across
    rebalances and never removes what the worker wrote locally; without this a partition whose
    transaction was aborted would later be recovered on top of the aborted writes, and the
    progress record among them would skip the messages whose offers were aborted.

    rocksdb: Faust keeps one database per table partition, with the changelog offset it
    recovered up to stored in it; the partition's keys and that offset are deleted, so the
    next recovery starts from the changelog's start as with the memory store."""
    partitions = runtime.settings.partitions
    recovery = runtime.app.tables.recovery
    for table in tables.values():
        store = table.data
        if hasattr(store, "_db_for_partition"):  # faust.stores.rocksdb.Store
            _discard_rocksdb_partition(store, partition)
        else:
            keys = [k for k in list(store.keys()) if _key_partition(k, partitions) == partition]
            for key in keys:
                with contextlib.suppress(KeyError):
                    del store[key]
        tp = TP(table.changelog_topic.get_topic_name(), partition)
        recovery.active_offsets.pop(tp, None)
        recovery.standby_offsets.pop(tp, None)
        # changelog records an earlier recovery read but has not applied yet
        buffered = recovery.buffers.get(table)
        if buffered:
            buffered[:] = [e for e in buffered if e.message.tp != tp]


def _discard_rocksdb_partition(store: Any, partition: int) -> None:
    """Empty one partition's database of a Faust rocksdb store, its persisted changelog
    offset included (Faust then recovers the partition from the changelog's start)."""
    db = store._db_for_partition(partition)
    for key in list(store._visible_keys(db)):
        db.delete(key)
    db.delete(store.offset_key)
    index = store._key_index  # key -> partition, Faust's lookup cache
    for key in [k for k, p in list(index.items()) if p == partition]:
        index.pop(key, None)


def _watch(future: Any) -> None:
    """Log a changelog record Kafka refused (the producer already retried)."""

    def done(fut: Any) -> None:
        if not fut.cancelled() and fut.exception() is not None:
            log.error("changelog write failed", exc_info=fut.exception())

    future.add_done_callback(done)


async def _write(
    runtime: Runtime, table: Any, partition: int, key: bytes, value: bytes | None
) -> Any:
    """Set (or delete, with None) ``key`` in the table's local store and its changelog."""
    store = table.data
    if value is None:
        with contextlib.suppress(KeyError):
            del store[key]
    else:
        store[key] = value
    topic = table.changelog_topic.get_topic_name()
    return await _send(runtime, partition, topic, key, value, None, partition=partition)


async def _send(
    runtime: Runtime,
    source_partition: int,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | None,
    *,
    partition: int | None = None,
) -> Any:
    """Produce one output record; the returned awaitable resolves when Kafka has it.

    With exactly_once the record joins the transaction of the keyed-topic partition being
    processed (Faust's transactional id ``<app id>-<group>-<partition>``), so it commits
    together with that partition's offsets and changelog writes. Faust's own routing picks the
    transaction by the *destination* partition of topics it consumes, which output topics
    are not.
    """
    app = runtime.app
    if runtime.settings.exactly_once:
        tid = transactional_id(app, runtime.keyed_topic, source_partition)
        if not has_transaction(app, tid):
            raise TransactionLost(f"no transaction for {tid}")
        producer = app.consumer.transactions.producer
        return await producer.send(
            topic, key, value, partition, None, headers, transactional_id=tid
        )
    return await app.producer.send(topic, key, value, partition, None, headers)


async def _dead_letter(
    runtime: Runtime, keyed_partition: int, item: list[Any], source: str, error: str
) -> Any:
    import orjson

    topic, _, partition = source.rpartition(":")
    key, _src, offset, _ingest, _routes, event = item
    headers = [
        ("kairos.dlq.reason", b"rule-error"),
        ("kairos.dlq.detail", error.encode()[:1000]),
        ("kairos.source.topic", topic.encode()),
        ("kairos.source.partition", partition.encode()),
        ("kairos.source.offset", str(offset).encode()),
    ]
    METRICS.dlq("rule-error")
    return await _send(
        runtime,
        keyed_partition,
        runtime.settings.dlq_topic,
        str(key).encode(),
        orjson.dumps(event),
        headers,
    )


def _count(runtime: Runtime, outcome: Outcome) -> None:
    per_rule: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for det in outcome.detections:
        slot = {"match": 0, "timeout": 1, "late": 2}.get(det.kind)
        if slot is not None:
            per_rule[det.rule][slot] += 1
    for rule, (matches, timeouts, late) in per_rule.items():
        c = runtime.counts[rule]
        c["matches"] += matches
        c["timeouts"] += timeouts
        c["late"] += late
        METRICS.detections(rule, matches=matches, timeouts=timeouts, late=late)
    for rule, n in outcome.rule_events.items():
        runtime.counts[rule]["events"] += n
    if outcome.oldest_ingest_ms:
        METRICS.observe_latency(max(0.0, time.time() - outcome.oldest_ingest_ms / 1000))
