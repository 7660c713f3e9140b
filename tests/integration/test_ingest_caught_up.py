"""The ingest declares a source partition read to the end only when it is, against the real
broker: the declaration that lets a quiet partition go idle for the event-time watermark
(``agents.detect``), so a partition with unread records must never be in it."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.ingest_service import caught_up
from tests.fixtures.topics import create_topic

pytestmark = pytest.mark.kafka


async def _send(bootstrap: str, topic: str, partition: int, n: int) -> None:
    """``n`` records in one produce request: the partition's high watermark jumps by ``n`` at
    once, so no fetch can see only some of them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(n):
            batch.append(key=None, value=b'{"i": %d}' % i, timestamp=None)
        batch.close()
        await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


async def _poll_until(consumer: AIOKafkaConsumer, want: int, max_records: int) -> int:
    """Poll until ``want`` records came back; fails after 20 s."""
    got = 0
    deadline = time.monotonic() + 20
    while got < want:
        assert time.monotonic() < deadline, f"only {got} of {want} records polled"
        batch = await consumer.getmany(timeout_ms=200, max_records=max_records)
        got += sum(len(records) for records in batch.values())
    return got


async def test_only_partitions_read_to_the_end_are_declared(kafka_bootstrap: str) -> None:
    topic = await create_topic(kafka_bootstrap, partitions=2, prefix="caught")
    await _send(kafka_bootstrap, topic, 0, 3)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        # nothing fetched yet: no high watermark known, nothing declared
        assert caught_up(consumer) == []
        await _poll_until(consumer, 3, max_records=100)
        # both read to the end (partition 1 is empty), once a fetch told their high watermarks
        deadline = time.monotonic() + 20
        while caught_up(consumer) != [f"{topic}:0", f"{topic}:1"]:
            assert time.monotonic() < deadline, caught_up(consumer)
            await consumer.getmany(timeout_ms=100)
        # two records reach partition 1; a fetch learns them, the ingest polls one only
        await _send(kafka_bootstrap, topic, 1, 2)
        await _poll_until(consumer, 1, max_records=1)
        assert caught_up(consumer) == [f"{topic}:0"]
        await _poll_until(consumer, 1, max_records=1)
        assert caught_up(consumer) == [f"{topic}:0", f"{topic}:1"]
        # unassigned partitions are never declared
        consumer.assign([TopicPartition(topic, 1)])
        await asyncio.wait_for(consumer.position(TopicPartition(topic, 1)), 20)
        assert f"{topic}:0" not in caught_up(consumer)
    finally:
        await consumer.stop()
