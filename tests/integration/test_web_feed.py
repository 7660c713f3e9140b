"""The detection feed on the real broker: seeded with the recent past, following the rules'
output topics as rules change, keeping positions across a change, and hiding aborted
transactions under read_committed (exactly_once).

The two-worker view (a detection made by one worker shown by the other) is in
test_web_routing.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from agents.feed import ClusterFeed, Subscription
from agents.rulebook import RuleBook
from tests.fixtures.topics import create_topic
from tests.integration.runtime_support import until

pytestmark = pytest.mark.kafka


def ce(eid: str, rule: str = "one") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": eid,
        "source": f"/kairos/rules/{rule}/v1",
        "type": "kairos.offer",
        "subject": eid,
        "kairoskind": "match",
        "data": {},
    }


def rule_text(name: str, topic: str) -> str:
    return (
        f"name: {name}\nversion: 1\nsource: events\nkey: user\nwithin: 1h\nstages:\n"
        "  - name: a\n    where: event.type == 'A'\n"
        "  - name: b\n    where: event.type == 'B'\n"
        f"emit: {{kind: offer, topic: {topic}, data: {{}}}}\n"
    )


async def next_event(sub: Subscription, timeout: float = 30.0) -> dict[str, Any]:
    return await asyncio.wait_for(anext(sub), timeout)


class Producer:
    """Sends one record at a time, each with a later timestamp than the one before (the feed
    orders by record timestamp; two sends within one millisecond would tie)."""

    def __init__(self, bootstrap: str, **kwargs: Any) -> None:
        self.kafka = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **kwargs)
        self.last_ms = 0

    async def send(self, topic: str, value: dict[str, Any] | bytes, partition: int = 0) -> None:
        raw = value if isinstance(value, bytes) else orjson.dumps(value)
        self.last_ms = max(int(time.time() * 1000), self.last_ms + 1)
        await self.kafka.send_and_wait(topic, raw, partition=partition, timestamp_ms=self.last_ms)


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[Producer]:
    p = Producer(kafka_bootstrap)
    await p.kafka.start()
    try:
        yield p
    finally:
        await p.kafka.stop()


async def running(feed: ClusterFeed) -> asyncio.Task[None]:
    await feed.start()
    return asyncio.create_task(feed.run())


async def finish(feed: ClusterFeed, task: asyncio.Task[None]) -> None:
    await feed.stop()
    await asyncio.wait_for(task, 10)


async def test_seeds_follows_rule_changes_and_keeps_positions(
    kafka_bootstrap: str, producer: Producer
) -> None:
    suffix = uuid.uuid4().hex[:8]
    offers = await create_topic(kafka_bootstrap, f"feed-offers-{suffix}", partitions=2)
    later = f"feed-later-{suffix}"
    for n in range(5):
        for p in (0, 1):
            await producer.send(offers, ce(f"old-{p}-{n}"), partition=p)

    book = RuleBook()
    assert book.apply("one", rule_text("one", offers)).ok
    feed = ClusterFeed(book, {"bootstrap_servers": kafka_bootstrap}, read_committed=False, seed=3)
    sub = feed.subscribe()
    task = await running(feed)
    try:
        # seeded with the last 3 records of each partition, newest first, none streamed
        await until(lambda: len(feed.ring) == 6, "the seed")
        seeded = {e["id"] for e in feed.query(None, None, 100)}
        assert seeded == {f"old-{p}-{n}" for p in (0, 1) for n in (2, 3, 4)}
        assert feed.query(None, None, 1)[0]["id"] == "old-1-4"
        assert feed.assignment == {TopicPartition(offers, 0), TopicPartition(offers, 1)}

        # live records stream; anything else on the topic is skipped; a repeat is dropped
        await producer.send(offers, ce("live-1"), partition=1)
        assert (await next_event(sub))["id"] == "live-1"
        await producer.send(offers, b"not a cloudevent", partition=1)
        await producer.send(offers, ce("live-1"), partition=1)
        await producer.send(offers, ce("live-2"), partition=1)
        assert (await next_event(sub))["id"] == "live-2"
        assert feed.skipped == 1 and feed.ring.duplicates == 1

        # a new rule emits to a topic that does not exist yet: followed once it does
        assert book.apply("two", rule_text("two", later)).ok
        await until(lambda: feed.missing_topics == {later}, "the missing topic to be noticed")
        await create_topic(kafka_bootstrap, later, partitions=1)
        await until(
            lambda: TopicPartition(later, 0) in feed.assignment, "the new topic to be assigned"
        )
        await producer.send(later, ce("new-1", rule="two"))
        await producer.send(offers, ce("live-3"), partition=0)
        got = {(await next_event(sub))["id"], (await next_event(sub))["id"]}
        assert got == {"new-1", "live-3"}
        # the reassignment kept the offers partitions where they were: nothing replayed
        assert sub.queue.empty() and feed.ring.duplicates == 1
        assert [e["id"] for e in feed.query("two", None, 10)] == ["new-1"]

        # retiring the rule that emitted to the offers topic stops reading it
        assert book.delete("one")
        await until(
            lambda: feed.assignment == {TopicPartition(later, 0)}, "the offers topic to be left"
        )
        await producer.send(later, ce("new-2", rule="two"))
        assert (await next_event(sub))["id"] == "new-2"
        # what was shown stays shown
        assert "live-3" in {e["id"] for e in feed.query(None, None, 100)}
    finally:
        await finish(feed, task)


async def test_read_committed_hides_aborted_detections(
    kafka_bootstrap: str, producer: Producer
) -> None:
    suffix = uuid.uuid4().hex[:8]
    topic = await create_topic(kafka_bootstrap, f"feed-tx-{suffix}", partitions=1)
    book = RuleBook()
    assert book.apply("one", rule_text("one", topic)).ok
    feed = ClusterFeed(book, {"bootstrap_servers": kafka_bootstrap}, read_committed=True)
    sub = feed.subscribe()
    task = await running(feed)
    tx = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"feed-tx-{suffix}", acks="all"
    )
    await tx.start()
    try:
        await until(lambda: feed.assignment, "the topic to be assigned")
        for eid, commit in (("committed-1", True), ("aborted-1", False), ("committed-2", True)):
            await tx.begin_transaction()
            await tx.send_and_wait(topic, orjson.dumps(ce(eid)))
            if commit:
                await tx.commit_transaction()
            else:
                await tx.abort_transaction()
        # the partition holds them in this order: an aborted record would come before the last
        assert (await next_event(sub))["id"] == "committed-1"
        assert (await next_event(sub))["id"] == "committed-2"
        assert [e["id"] for e in feed.query(None, None, 10)] == ["committed-2", "committed-1"]
    finally:
        await tx.stop()
        await finish(feed, task)

    # a worker started later seeds the same view; without read_committed it would not
    for committed, expected in (
        (True, ["committed-2", "committed-1"]),
        (False, ["committed-2", "aborted-1", "committed-1"]),
    ):
        late = ClusterFeed(book, {"bootstrap_servers": kafka_bootstrap}, read_committed=committed)
        task = await running(late)
        try:
            size = len(expected)
            await until(lambda late=late, size=size: len(late.ring) == size, "the seed")
            assert [e["id"] for e in late.query(None, None, 10)] == expected
        finally:
            await finish(late, task)
