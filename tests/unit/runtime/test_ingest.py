"""Ingest routing against real rules: batches per partition, watermark source, DLQ reasons."""

from __future__ import annotations

import orjson
import pytest

from agents.ingest import Ingest
from agents.rulebook import RuleBook
from agents.wire import decode, partition_for

RULE = """
name: a-then-b
version: 1
source: events
key: user
id: id
time: ts
within: 1h
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
emit: {kind: offer, topic: offers, data: {first: "stages.a[0].id"}}
"""


@pytest.fixture
def ingest() -> Ingest:
    book = RuleBook()
    assert book.apply("a-then-b", RULE).ok
    return Ingest(book, partitions=4)


def rec(offset: int, value: bytes | None, topic: str = "events") -> tuple:
    return (topic, 0, offset, None, value, [("trace", b"t1")])


def test_events_are_batched_per_partition_with_original_bytes(ingest: Ingest) -> None:
    raw = [
        b'{"id": "e1", "user": "u1", "type": "A", "ts": 10}',
        b'{"id": "e2", "user": "u2", "type": "A", "ts": 30}',
        b'{"id": "e3", "user": "u1", "type": "B", "ts": 20}',
    ]
    out = ingest.route_poll([rec(i, v) for i, v in enumerate(raw)], now_ms=999)
    assert out.events == 3 and not out.dead
    seen: dict[str, list] = {}
    for p, builder in out.batches.items():
        msg = decode(builder.encode())
        for key, src, offset, ingest_ms, routes, event in msg.events:
            assert partition_for(key, 4) == p
            assert msg.sources[src] == "events:0" and ingest_ms == 999
            assert event == orjson.loads(raw[offset])
            seen[event["id"]] = routes
    # each route carries the rule's max event time so far (the watermark source)
    assert seen == {
        "e1": [["a-then-b", 10, "e1", 10]],
        "e2": [["a-then-b", 30, "e2", 30]],
        "e3": [["a-then-b", 20, "e3", 30]],
    }
    assert ingest.max_ts == {"a-then-b": {"events:0": 30}}


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"{not json", "malformed-json", "unexpected character"),
        (b"\xff\xfe{}", "not-utf8", "byte 0 is not UTF-8"),
        (b"[1, 2]", "not-an-object", "JSON list where an object was expected"),
        (b'{"id": "x", "type": "A", "ts": 5}', "missing-key", "no key field 'user'"),
        (b'{"id": "x", "user": "u", "type": "A"}', "missing-time", "no time field 'ts'"),
        (b'{"id": "x", "user": "u", "ts": "yesterday"}', "invalid-time", "not an RFC 3339"),
        (b'{"id": "x", "user": ["u"], "ts": 5}', "invalid-key", "a key is a non-empty string"),
        (None, "empty-value", "tombstone"),
    ],
)
def test_unusable_records_go_to_the_dlq_untouched(
    ingest: Ingest, value: bytes | None, reason: str, detail: str
) -> None:
    out = ingest.route_poll([rec(7, value)])
    assert out.events == 0 and not out.batches
    (dead,) = out.dead
    assert dead.value == value and dead.reason == reason
    assert detail.lower() in dead.detail.lower()
    headers = dict(dead.dlq_headers())
    assert headers["kairos.dlq.reason"] == reason.encode()
    assert headers["kairos.source.topic"] == b"events"
    assert headers["kairos.source.partition"] == b"0"
    assert headers["kairos.source.offset"] == b"7"
    assert headers["trace"] == b"t1"  # the original headers are kept


def test_topic_without_rules_is_ignored_not_dead_lettered(ingest: Ingest) -> None:
    out = ingest.route_poll([rec(0, b"{}", topic="other")])
    assert (out.events, out.ignored, out.dead) == (0, 1, [])


def test_context_records_update_the_key_on_its_partition() -> None:
    book = RuleBook()
    rule = RULE.replace("time: ts", "time: ts\ncontext: {source: profiles, key: user}")
    assert book.apply("a-then-b", rule).ok
    ingest = Ingest(book, partitions=4)
    assert book.sources() == {"events", "profiles"}
    out = ingest.route_poll(
        [
            rec(0, b'{"user": "u1", "tier": "gold"}', topic="profiles"),
            rec(1, b'{"tier": "silver"}', topic="profiles"),  # no key: skipped, not dead
        ]
    )
    assert (out.context, out.events, out.dead) == (2, 0, [])
    ((p, builder),) = out.batches.items()
    assert p == partition_for("u1", 4)
    assert decode(builder.encode()).context == [["u1", 0, 0, {"user": "u1", "tier": "gold"}]]
