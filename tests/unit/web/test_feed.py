"""The cluster's detection feed without a broker: the ring, record handling, topic choice.

Reading the topics (assignment, seeding, following rule changes, read_committed) is tested
against the real broker in tests/integration/test_web_feed.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from agents.feed import ClusterFeed, DetectionRing, decode_cloudevent, output_topics, rule_of
from agents.rulebook import RuleBook


def ce(n: int, rule: str = "r", action: str = "offer", kind: str = "match") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"id-{n}",
        "source": f"/kairos/rules/{rule}/v1",
        "type": f"kairos.{action}",
        "subject": f"k{n}",
        "kairoskind": kind,
        "data": {"n": n},
    }


@dataclass
class Record:
    offset: int
    timestamp: int
    value: bytes | None


def rule_text(name: str, emit: str | None, timeout: str | None = None) -> str:
    lines = [
        f"name: {name}",
        "version: 1",
        "source: events",
        "key: user",
        "within: 1h",
        "stages:",
        "  - name: a",
        "    where: event.type == 'A'",
        "  - name: b",
        "    where: event.type == 'B'",
    ]
    if emit:
        lines.append(f"emit: {{kind: offer, topic: {emit}, data: {{}}}}")
    if timeout:
        lines.append(f"on_timeout: {{kind: alert, topic: {timeout}, data: {{}}}}")
    return "\n".join(lines) + "\n"


# -- the ring ------------------------------------------------------------------------------


def test_newest_first_by_record_time_whatever_the_arrival_order() -> None:
    ring = DetectionRing(size=10)
    for ts, n in [(30, 3), (10, 1), (20, 2), (40, 4)]:
        ring.add(ts, ce(n), live=False)
    assert [e["id"] for e in ring.query(None, None, 10)] == ["id-4", "id-3", "id-2", "id-1"]
    assert [e["id"] for e in ring.query(None, None, 2)] == ["id-4", "id-3"]


def test_bounded_to_the_newest() -> None:
    ring = DetectionRing(size=3)
    for n in range(6):
        ring.add(100 + n, ce(n), live=False)
    ring.add(1, ce(99), live=False)  # older than everything held: not kept
    assert [e["id"] for e in ring.query(None, None, 10)] == ["id-5", "id-4", "id-3"]
    assert len(ring) == 3
    # an evicted id may come back (it is no longer held)
    assert ring.add(200, ce(0), live=False)
    assert ring.query(None, None, 1)[0]["id"] == "id-0"


def test_a_detection_held_already_is_not_kept_or_streamed_twice() -> None:
    ring = DetectionRing()
    sub = ring.subscribe()
    assert ring.add(1, ce(1), live=True)
    assert not ring.add(2, ce(1), live=True)
    assert ring.duplicates == 1
    assert len(ring) == 1 and sub.queue.qsize() == 1


def test_filters_by_rule_and_kind() -> None:
    ring = DetectionRing()
    ring.add(1, ce(1, rule="a", action="offer", kind="match"), live=False)
    ring.add(2, ce(2, rule="b", action="alert", kind="timeout"), live=False)
    ring.add(3, ce(3, rule="a", action="alert", kind="match"), live=False)

    def ids(rule: str | None, kind: str | None) -> list[str]:
        return [e["id"] for e in ring.query(rule, kind, 10)]

    assert ids("a", None) == ["id-3", "id-1"]
    assert ids(None, "alert") == ["id-3", "id-2"]
    assert ids(None, "timeout") == ["id-2"]
    assert ids("a", "match") == ["id-3", "id-1"]
    assert ids("b", "offer") == []
    assert ids("nope", None) == []


async def test_only_live_detections_reach_subscribers() -> None:
    ring = DetectionRing()
    first, second = ring.subscribe(), ring.subscribe()
    assert ring.subscribers == 2
    ring.add(1, ce(1), live=False)  # seeded history
    ring.add(2, ce(2), live=True)
    got = await asyncio.wait_for(anext(first), 1)
    assert got["id"] == "id-2" and first.queue.empty()
    assert (await asyncio.wait_for(anext(second), 1))["id"] == "id-2"
    await first.aclose()
    ring.add(3, ce(3), live=True)
    assert first.queue.empty() and second.queue.qsize() == 1
    assert ring.subscribers == 1


def test_a_slow_subscriber_loses_events_not_the_worker() -> None:
    ring = DetectionRing(queue_size=2)
    sub = ring.subscribe()
    for n in range(5):
        ring.add(n, ce(n), live=True)
    assert sub.queue.qsize() == 2 and sub.dropped == 3
    assert len(ring) == 5


def test_ring_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        DetectionRing(size=0)


# -- records -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        orjson.dumps({"id": "x", "type": "order.created", "source": "/shop"}),
        orjson.dumps({"id": 7, "type": "kairos.offer", "source": "/kairos/rules/r/v1"}),
        orjson.dumps({"id": "x", "type": "kairos.offer", "source": "/elsewhere"}),
    ],
)
def test_anything_but_a_rule_cloudevent_is_skipped(value: bytes | None) -> None:
    assert decode_cloudevent(value) is None


def test_a_rule_cloudevent_is_decoded_with_its_rule() -> None:
    assert decode_cloudevent(orjson.dumps(ce(1, rule="late-bags"))) == (
        "late-bags",
        ce(1, rule="late-bags"),
    )


def test_rule_of_reads_the_source() -> None:
    assert rule_of(ce(1, rule="late-bags")) == "late-bags"
    assert rule_of({"source": "/other/x"}) is None
    assert rule_of({}) is None


def test_take_orders_a_poll_by_time_and_streams_what_is_news() -> None:
    feed = ClusterFeed(RuleBook(), {}, read_committed=False)
    sub = feed.subscribe()
    a, b = TopicPartition("offers", 0), TopicPartition("offers", 1)
    # (end offset when assigned, ms when the topic became wanted)
    feed._live_from = {a: (2, 1000), b: (1, 1000)}
    batch = {
        a: [Record(0, 50, orjson.dumps(ce(1))), Record(2, 10, orjson.dumps(ce(2)))],
        b: [
            Record(0, 30, orjson.dumps(ce(3))),
            Record(1, 40, b"garbage"),
            Record(2, 60, orjson.dumps(ce(4))),
        ],
    }
    assert feed.take(batch) == 4
    assert feed.skipped == 1
    assert [e["id"] for e in feed.query(None, None, 10)] == ["id-4", "id-1", "id-3", "id-2"]
    # at or after the end: live, whatever its time
    assert [sub.queue.get_nowait()["id"] for _ in range(2)] == ["id-2", "id-4"]
    assert sub.queue.empty()


def test_records_produced_after_the_topic_was_wanted_are_news_even_before_the_end() -> None:
    feed = ClusterFeed(RuleBook(), {}, read_committed=False)
    sub = feed.subscribe()
    tp = TopicPartition("offers", 0)
    feed._live_from = {tp: (5, 1000)}  # 5 records there at assignment; wanted since 1000
    feed.take({tp: [Record(3, 999, orjson.dumps(ce(1))), Record(4, 1000, orjson.dumps(ce(2)))]})
    assert sub.queue.get_nowait()["id"] == "id-2" and sub.queue.empty()
    assert len(feed.ring) == 2


# -- topics --------------------------------------------------------------------------------


def test_output_topics_follow_the_rule_book() -> None:
    book = RuleBook()
    assert output_topics(book) == set()
    assert book.apply("one", rule_text("one", "offers", "alerts")).ok
    assert book.apply("two", rule_text("two", "offers")).ok
    assert output_topics(book) == {"offers", "alerts"}
    assert book.delete("one")
    assert output_topics(book) == {"offers"}


def test_a_rule_change_asks_the_feed_to_look_again() -> None:
    book = RuleBook()
    feed = ClusterFeed(book, {}, read_committed=False)
    feed._changed.clear()
    book.apply("one", rule_text("one", "offers"))
    assert feed._changed.is_set()


async def test_run_before_start_says_what_to_do() -> None:
    feed = ClusterFeed(RuleBook(), {}, read_committed=False)
    with pytest.raises(RuntimeError, match="start"):
        await feed.run()
