"""The ingest's clock on keyed batches: a partition learns how far the other source partitions
have got with each batch it receives, not only with each tick, and nothing else changes."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from agents.detect import Detector
from agents.ingest import CLOCK_HISTORY, Ingest
from agents.rulebook import RuleBook
from agents.wire import Batch, decode, encode_tick, partition_for

PARTS = 4

A_THEN_B = """
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


def _book() -> RuleBook:
    book = RuleBook()
    status = book.apply("a-then-b", A_THEN_B)
    assert status.ok, status.errors
    return book


def _users() -> tuple[str, str, str]:
    """Two users on one keyed partition, a third on another."""
    names = (f"u{i}" for i in itertools.count())
    first = next(names)
    p = partition_for(first, PARTS)
    same = next(u for u in names if partition_for(u, PARTS) == p)
    other = next(u for u in names if partition_for(u, PARTS) != p)
    return first, same, other


class _Pipeline:
    """Ingest → keyed messages (through the wire format) → Detector, without Kafka."""

    def __init__(self, *, batch_clock: bool = True) -> None:
        self.book = _book()
        self.ingest = Ingest(self.book, PARTS)
        self.table: dict[bytes, bytes] = {}
        self.detector = Detector(self.book, self.table, PARTS)
        self.batch_clock = batch_clock
        self.offsets = {0: 0, 1: 0}
        self.now = 1_000

    def poll(self, *events: tuple[int, dict[str, Any]]) -> list[tuple[str, list[str]]]:
        """Route one poll of ``(source partition, event)``; the matches it releases."""
        self.now += 10
        records = []
        for src, event in events:
            records.append(("events", src, self.offsets[src], None, orjson.dumps(event), []))
            self.offsets[src] += 1
        result = self.ingest.route_poll(records, now_ms=self.now)
        found = []
        for p, builder in result.batches.items():
            message = decode(builder.encode())
            assert isinstance(message, Batch)
            if not self.batch_clock:
                message.watermarks, message.last = {}, {}
            found += self._handle(p, message)
        return found

    def tick(self) -> list[tuple[str, list[str]]]:
        value = encode_tick(self.now, self.ingest.max_ts, self.ingest.src_last)
        found = []
        for p in range(PARTS):
            found += self._handle(p, decode(value))
        return found

    def _handle(self, p: int, message: Any) -> list[tuple[str, list[str]]]:
        outcome = self.detector.handle(p, message)
        self.table.update({k: v for k, v in self.detector.flush(p).items() if v is not None})
        return [(d.key, d.stages["b"]) for d in outcome.detections]


def _ev(eid: str, user: str, kind: str, ts: int) -> dict[str, Any]:
    return {"id": eid, "user": user, "type": kind, "ts": ts}


def test_a_held_event_is_released_by_the_next_batch_that_shows_the_other_source_past_it() -> None:
    u1, u3, u2 = _users()
    for batch_clock in (True, False):
        line = _Pipeline(batch_clock=batch_clock)
        assert line.poll((1, _ev("x0", u2, "X", 500))) == []  # source 1 exists
        assert line.tick() == []  # every partition knows it
        assert line.poll((0, _ev("a1", u1, "A", 1_000))) == []
        # source 1 is at 500: B (2 000) waits in u1's out-of-order buffer
        assert line.poll((0, _ev("b1", u1, "B", 2_000))) == []
        # source 1 passes 2 000, on another keyed partition: nothing reaches u1's yet
        assert line.poll((1, _ev("x1", u2, "X", 2_500))) == []
        # the next batch for u1's partition carries source 1's progress and releases B
        released = line.poll((0, _ev("y1", u3, "Y", 2_600)))
        if batch_clock:
            assert released == [(u1, ["b1"])]
            assert line.tick() == []
        else:  # without it, B waits for the next tick: the same match, later
            assert released == []
            assert line.tick() == [(u1, ["b1"])]


def test_the_clock_sent_is_what_the_partition_has_not_had_yet() -> None:
    u1, u3, u2 = _users()
    p1, p2 = partition_for(u1, PARTS), partition_for(u2, PARTS)
    ingest = Ingest(_book(), PARTS)

    def route(now: int, *events: tuple[int, dict[str, Any]]) -> dict[int, Any]:
        records = [
            ("events", src, i, None, orjson.dumps(e), []) for i, (src, e) in enumerate(events)
        ]
        return ingest.route_poll(records, now_ms=now).batches

    first = route(10, (0, _ev("a", u1, "A", 100)), (1, _ev("b", u2, "X", 50)))
    assert first[p1].watermarks == {"a-then-b": {"events:0": 100, "events:1": 50}}
    assert first[p1].last == {"events:0": 10, "events:1": 10}
    # a poll with source 1 only, then one with source 0 only, both for p2
    route(20, (1, _ev("c", u2, "X", 60)))
    second = route(30, (0, _ev("d", u2, "X", 200)))
    assert second[p2].watermarks == {"a-then-b": {"events:0": 200}}
    # p1 missed two polls: it gets both polls' changes at once
    third = route(40, (0, _ev("e", u3, "Y", 210)))
    assert third[p1].watermarks == {"a-then-b": {"events:0": 210, "events:1": 60}}
    assert third[p1].last == {"events:0": 40, "events:1": 20}
    # a partition silent for longer than the history gets the whole clock again
    for i in range(CLOCK_HISTORY):
        route(100 + i, (1, _ev(f"z{i}", u2, "X", 300 + i)))
    late = route(1_000, (0, _ev("f", u1, "Y", 220)))
    assert late[p1].watermarks == ingest.max_ts
    assert late[p1].last == ingest.src_last


def test_batches_without_the_clock_decode_as_before() -> None:
    raw = orjson.dumps({"k": "b", "s": ["events:0"], "e": []})
    message = decode(raw)
    assert isinstance(message, Batch)
    assert message.watermarks == {} and message.last == {}


def test_a_partition_knows_the_other_sources_from_its_first_batch_without_a_tick() -> None:
    u1, _u3, u2 = _users()
    line = _Pipeline()
    assert line.poll((1, _ev("x0", u2, "X", 500))) == []
    assert line.poll((0, _ev("a1", u1, "A", 1_000))) == []
    # no tick yet, and still B is not released on source 0's watermark alone
    assert line.poll((0, _ev("b1", u1, "B", 2_000))) == []
    assert line.poll((1, _ev("x1", u2, "X", 2_500)), (0, _ev("c1", u1, "C", 2_600))) == [
        (u1, ["b1"])
    ]
