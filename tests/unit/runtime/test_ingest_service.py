"""The ingest loop: its broker long-poll (short while records flow, long once idle) and when
it sends ticks."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition

from agents import ingest_service
from agents.ingest_service import (
    FETCH_WAIT_BUSY_MS,
    FETCH_WAIT_IDLE_MS,
    IngestService,
    TickSchedule,
)
from agents.rulebook import RuleBook
from tests.unit.runtime.test_ingest import RULE

TP = TopicPartition("events", 0)


def settings() -> Any:
    return SimpleNamespace(
        app_id="t",
        partitions=4,
        dlq_topic="dlq",
        ingest_batch_max=100,
        ingest_linger_ms=0,
        tick_interval=1.0,
        watermark_interval=0.2,
        session_timeout=10.0,
        heartbeat_interval=3.0,
        kafka_client_kwargs=lambda: {},
    )


class FakeConsumer:
    """Answers ``getmany`` from a script of polls and records the long-poll of each one."""

    polls: list[dict[TopicPartition, list[Any]]] = []
    service: IngestService | None = None

    def __init__(self, **kwargs: Any) -> None:
        self._fetcher = SimpleNamespace(
            _fetch_max_wait_ms=kwargs["fetch_max_wait_ms"], _fetch_min_bytes=1
        )
        self.waits: list[int] = []
        self.min_bytes: list[int] = []
        self.commits: list[dict[TopicPartition, int]] = []
        FakeConsumer.instance = self  # type: ignore[attr-defined]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list]:
        self.waits.append(self._fetcher._fetch_max_wait_ms)
        self.min_bytes.append(self._fetcher._fetch_min_bytes)
        await asyncio.sleep(0)  # as a real poll does: earlier sends' acknowledgements land
        if not FakeConsumer.polls:
            assert FakeConsumer.service is not None
            FakeConsumer.service._stopping = True
            return {}
        return FakeConsumer.polls.pop(0)


class FakeProducer:
    """Acknowledges every send at once; ``gate`` (when set) holds each send until it opens,
    ``error`` fails the acknowledgements."""

    def __init__(self) -> None:
        self.sent = 0
        self.gate: asyncio.Event | None = None
        self.error: Exception | None = None

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        if self.gate is not None:
            await self.gate.wait()
        self.sent += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            done.set_exception(self.error)
        else:
            done.set_result(None)
        return done


def record(offset: int) -> Any:
    value = b'{"id": "e%d", "user": "u1", "type": "A", "ts": %d}' % (offset, offset)
    return SimpleNamespace(offset=offset, key=None, value=value, headers=[])


def test_long_poll_is_short_while_records_flow_and_long_once_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingest_service, "AIOKafkaConsumer", FakeConsumer)
    monkeypatch.setattr(ingest_service, "IDLE_AFTER", 0.0)
    book = RuleBook()
    assert book.apply("a-then-b", RULE).ok
    service = IngestService(settings(), book, "t-keyed")
    producer = FakeProducer()
    service.producer = producer  # type: ignore[assignment]
    FakeConsumer.service = service
    FakeConsumer.polls = [{TP: [record(0)]}, {}, {}, {TP: [record(1)]}, {TP: [record(2)]}, {}]
    asyncio.run(service.run())
    waits = FakeConsumer.instance.waits  # type: ignore[attr-defined]
    busy, idle = FETCH_WAIT_BUSY_MS, FETCH_WAIT_IDLE_MS
    # records, then an empty poll switches to the long poll; the next records switch back
    assert waits == [busy, busy, idle, idle, busy, busy, idle]
    assert FakeConsumer.instance.min_bytes == [1] * 7  # type: ignore[attr-defined]
    assert producer.sent == 3  # one keyed message per poll with records


def test_a_linger_holds_busy_fetches_and_never_idle_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """KAIROS_INGEST_LINGER_MS: while records flow the broker holds each fetch for the linger
    (a min size no fetch reaches); once idle it answers at the first record again."""
    monkeypatch.setattr(ingest_service, "AIOKafkaConsumer", FakeConsumer)
    monkeypatch.setattr(ingest_service, "IDLE_AFTER", 0.0)
    book = RuleBook()
    assert book.apply("a-then-b", RULE).ok
    config = settings()
    config.ingest_linger_ms = 20
    service = IngestService(config, book, "t-keyed")
    service.producer = FakeProducer()  # type: ignore[assignment]
    FakeConsumer.service = service
    FakeConsumer.polls = [{TP: [record(0)]}, {}, {}, {TP: [record(1)]}, {}]
    asyncio.run(service.run())
    consumer = FakeConsumer.instance  # type: ignore[attr-defined]
    held = ingest_service.LINGER_MIN_BYTES
    idle = FETCH_WAIT_IDLE_MS
    assert list(zip(consumer.waits, consumer.min_bytes, strict=True)) == [
        (20, held),
        (20, held),
        (idle, 1),
        (idle, 1),
        (20, held),
        (idle, 1),
    ]


@pytest.mark.parametrize(("interval", "while_running"), [(0.0, [1, 2, 3]), (3600.0, [1])])
def test_acknowledged_offsets_are_committed_at_most_every_commit_interval(
    monkeypatch: pytest.MonkeyPatch, interval: float, while_running: list[int]
) -> None:
    """Three polls: with no interval each is committed; with a long one only the first is,
    and the rest when the worker stops (``wait``), never an offset before its records'
    acknowledgement."""
    monkeypatch.setattr(ingest_service, "AIOKafkaConsumer", FakeConsumer)
    monkeypatch.setattr(ingest_service, "COMMIT_INTERVAL", interval)
    book = RuleBook()
    assert book.apply("a-then-b", RULE).ok
    service = IngestService(settings(), book, "t-keyed")
    service.producer = FakeProducer()  # type: ignore[assignment]
    FakeConsumer.service = service
    FakeConsumer.polls = [{TP: [record(0)]}, {TP: [record(1)]}, {TP: [record(2)]}]

    async def run_then_stop() -> None:
        await service.run()
        consumer = FakeConsumer.instance  # type: ignore[attr-defined]
        assert [c[TP] for c in consumer.commits] == while_running
        await service._commit_done(wait=True)
        assert consumer.commits[-1] == {TP: 3}
        assert service._positions == {TP: 3}

    asyncio.run(run_then_stop())


def revocable(monkeypatch: pytest.MonkeyPatch) -> tuple[IngestService, Any, FakeProducer]:
    """A service with a consumer and producer in place, committing at most once an hour."""
    monkeypatch.setattr(ingest_service, "COMMIT_INTERVAL", 3600.0)
    book = RuleBook()
    assert book.apply("a-then-b", RULE).ok
    service = IngestService(settings(), book, "t-keyed")
    consumer = FakeConsumer(fetch_max_wait_ms=FETCH_WAIT_BUSY_MS)
    producer = FakeProducer()
    service.consumer = consumer  # type: ignore[assignment]
    service.producer = producer  # type: ignore[assignment]
    return service, consumer, producer


async def test_a_revocation_commits_what_was_acknowledged_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Kafka's commit-on-revoke: the next owner starts where this member stopped, not up to
    a commit interval earlier."""
    service, consumer, _producer = revocable(monkeypatch)
    await service._process({TP: [record(0)]})
    await asyncio.sleep(0)  # its send is acknowledged
    await service._commit_done()
    await service._process({TP: [record(1)]})
    await service._process({TP: [record(2)]})
    await asyncio.sleep(0)
    await service._commit_done()
    assert consumer.commits == [{TP: 1}]  # the interval holds the later polls back
    await service._listener.on_partitions_revoked({TP})  # what aiokafka calls
    assert consumer.commits == [{TP: 1}, {TP: 3}]


async def test_a_poll_read_before_a_revocation_is_never_committed_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A poll still being routed when the group takes its partition is settled, but its
    offset is not committed, not even once the partition is back: the other owner may have
    committed further meanwhile. A poll read under the new assignment is committed."""
    service, consumer, producer = revocable(monkeypatch)
    producer.gate = asyncio.Event()
    routing = asyncio.create_task(service._process({TP: [record(5)]}))
    await asyncio.sleep(0)  # it waits in its send
    await service._on_revoked({TP})
    producer.gate.set()
    await routing
    await service._commit_done(wait=True)  # the partition came back
    assert consumer.commits == []
    assert not service._inflight
    await service._process({TP: [record(9)]})
    await service._commit_done(wait=True)
    assert consumer.commits == [{TP: 10}]


def test_a_send_that_failed_before_a_revocation_stops_the_ingest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its offsets are not committed (the next owner reads the poll again) and the ingest
    stops as it would had its own loop found the failure."""
    service, consumer, producer = revocable(monkeypatch)
    producer.error = RuntimeError("the keyed topic refused the batch")

    async def revoke_then_run() -> None:
        await service._process({TP: [record(0)]})
        await service._on_revoked({TP})
        assert consumer.commits == []
        monkeypatch.setattr(ingest_service, "AIOKafkaConsumer", FakeConsumer)
        FakeConsumer.service = service
        FakeConsumer.polls = [{TP: [record(1)]}]
        with pytest.raises(RuntimeError, match="refused the batch"):
            await service.run()

    asyncio.run(revoke_then_run())


def test_ticks_follow_the_watermark_interval_while_event_times_move() -> None:
    schedule = TickSchedule(interval=1.0, watermark_interval=0.2)
    assert schedule.step == 0.2
    maxima: dict[str, dict[str, int]] = {"r": {"events:0": 100}}
    sent = []
    for i in range(1, 26):  # 5 s of checks, one per step
        now = round(i * 0.2, 1)
        if i <= 10:  # the first 2 s: event times move between checks
            maxima["r"]["events:0"] += 1
        if schedule.due(now, maxima):
            sent.append(now)
    # every step while they move, then only every interval (the wall-clock heartbeat)
    assert sent == [0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 3.0, 4.0, 5.0]


def test_a_new_source_partition_counts_as_a_move() -> None:
    schedule = TickSchedule(interval=1.0, watermark_interval=0.2)
    maxima: dict[str, dict[str, int]] = {"r": {"events:0": 100}}
    assert schedule.due(0.2, maxima)
    assert not schedule.due(0.4, maxima)
    maxima["r"]["events:1"] = 50
    assert schedule.due(0.6, maxima)
    maxima["q"] = {"events:0": 7}
    assert schedule.due(0.8, maxima)
    assert not schedule.due(1.0, maxima)


@pytest.mark.parametrize("watermark_interval", [0.0, 5.0])
def test_without_watermark_ticks_a_tick_goes_every_interval(watermark_interval: float) -> None:
    schedule = TickSchedule(interval=1.0, watermark_interval=watermark_interval)
    assert schedule.step == 1.0
    maxima: dict[str, dict[str, int]] = {"r": {"events:0": 0}}
    sent = []
    for i in range(1, 4):
        maxima["r"]["events:0"] += 1
        sent.append(schedule.due(float(i), maxima))
        assert not schedule.due(i + 0.4, maxima)  # no check in between would be due
    assert sent == [True, True, True]
