"""Detect against real rules and an in-memory table: no Kafka, same code path as the agent."""

from __future__ import annotations

from typing import Any

import pytest

from agents.detect import Detector, Outcome, progress_key
from agents.rulebook import RuleBook
from agents.wire import Batch, BatchBuilder, Tick, decode, partition_for

A_THEN_B = """
name: a-then-b
version: {version}
source: events
key: user
id: id
time: ts
within: 1h
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == '{first}'
  - name: b
    after: relaxed
    where: event.type == 'B'
emit: {{kind: offer, topic: offers, data: {{first: "stages.a[0].id"}}}}
"""

IDLE = """
name: idle-cart
version: 1
source: events
key: user
id: id
within: 2s
stages:
  - name: carted
    where: event.type == 'Cart'
  - name: ordered
    after: relaxed
    negate: true
    where: event.type == 'Order'
emit: {kind: alert, topic: alerts, data: {cart: "stages.carted[0].id"}}
"""

PARTS = 4


def book_with(*texts: tuple[str, str]) -> RuleBook:
    book = RuleBook()
    for name, text in texts:
        status = book.apply(name, text)
        assert status.ok, status.errors
    return book


def batch(events: list[dict[str, Any]], *, offset0: int = 0, now: int = 1_000) -> dict[int, Batch]:
    """Route like the ingest: one Batch per partition (event time = ``ts``)."""
    out: dict[int, BatchBuilder] = {}
    seen = 0
    for i, e in enumerate(events):
        b = out.setdefault(partition_for(e["user"], PARTS), BatchBuilder())
        routes = []
        if "ts" in e:
            seen = max(seen, e["ts"])
            routes.append(["a-then-b", e["ts"], e["id"], seen])
        else:
            routes.append(["idle-cart", None, e["id"], None])
        import orjson

        b.add_event(e["user"], "events:0", offset0 + i, now, routes, orjson.dumps(e))
    return {p: decode(b.encode()) for p, b in out.items()}  # type: ignore[misc]


def run(det: Detector, table: dict, batches: dict[int, Any]) -> list[Any]:
    found = []
    for p, msg in batches.items():
        outcome = det.handle(p, msg)
        found += outcome.detections
        apply(table, det.flush(p))
    return found


def apply(table: dict, writes: dict[bytes, bytes | None]) -> None:
    for k, v in writes.items():
        if v is None:
            table.pop(k, None)
        else:
            table[k] = v


def test_match_across_batches_and_recovery_from_the_table() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    assert run(det, table, batch([{"id": "e1", "user": "u1", "type": "A", "ts": 10}])) == []
    # a new worker: nothing cached, state comes from the table (the changelog)
    det2 = Detector(book, table, PARTS)
    found = run(det2, table, batch([{"id": "e2", "user": "u1", "type": "B", "ts": 20}], offset0=1))
    assert [(d.rule, d.key, d.kind, d.stages, d.data) for d in found] == [
        ("a-then-b", "u1", "match", {"a": ["e1"], "b": ["e2"]}, {"first": "e1"})
    ]
    p = partition_for("u1", PARTS)
    assert progress_key(p) in table


def test_replayed_batch_is_skipped() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    events = [
        {"id": "e1", "user": "u1", "type": "A", "ts": 10},
        {"id": "e2", "user": "u1", "type": "B", "ts": 20},
    ]
    assert len(run(det, table, batch(events))) == 1
    # the ingest crashed before committing and sends the same poll again
    (p,) = batch(events)
    outcome = Detector(book, table, PARTS).handle(p, batch(events)[p])
    assert outcome.detections == [] and outcome.duplicates == 2


def test_processing_time_absence_fires_on_ticks_for_an_idle_key() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("idle-cart", IDLE))
    det = Detector(book, table, PARTS)
    ((p, msg),) = batch([{"id": "c1", "user": "u9", "type": "Cart"}], now=10_000).items()
    assert det.handle(p, msg).detections == []
    assert det.handle(p, Tick(11_000, {})).detections == []
    found = det.handle(p, Tick(12_500, {})).detections
    assert [(d.key, d.kind, d.stages) for d in found] == [("u9", "match", {"carted": ["c1"]})]
    assert det.handle(p, Tick(20_000, {})).detections == []  # fires once


def test_event_time_watermark_from_ticks_advances_idle_keys() -> None:
    table: dict[bytes, bytes] = {}
    absent = IDLE.replace("name: idle-cart", "name: a-then-b").replace(
        "id: id\n", "id: id\ntime: ts\n"
    )
    book = book_with(("a-then-b", absent))
    det = Detector(book, table, PARTS)
    ((p, msg),) = batch([{"id": "c1", "user": "u9", "type": "Cart", "ts": 1_000}]).items()
    assert det.handle(p, msg).detections == []
    # other keys' events (elsewhere) moved the rule's max event time: the tick carries it
    found = det.handle(p, Tick(0, {"a-then-b": {"events:0": 3_001}})).detections
    assert [(d.key, d.kind) for d in found] == [("u9", "match")]


def test_replaced_version_drops_partial_matches() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    run(det, table, batch([{"id": "e1", "user": "u1", "type": "A", "ts": 10}]))
    assert book.apply("a-then-b", A_THEN_B.format(version=2, first="X")).ok
    found = run(
        det,
        table,
        batch(
            [
                {"id": "e2", "user": "u1", "type": "B", "ts": 20},  # v1's partial is gone
                {"id": "e3", "user": "u1", "type": "X", "ts": 30},
                {"id": "e4", "user": "u1", "type": "B", "ts": 40},
            ],
            offset0=1,
        ),
    )
    assert [(d.version, d.stages) for d in found] == [(2, {"a": ["e3"], "b": ["e4"]})]


def test_invalid_version_is_rejected_and_the_running_one_stays() -> None:
    book = book_with(("a-then-b", A_THEN_B.format(version=2, first="A")))
    status = book.apply(
        "a-then-b", A_THEN_B.format(version=3, first="A").replace("within: 1h", "within: soon")
    )
    assert not status.ok and status.version == 3
    assert any("within" in e for e in status.errors), status.errors
    assert book.rules["a-then-b"].version == 2
    older = book.apply("a-then-b", A_THEN_B.format(version=1, first="A"))
    assert not older.ok
    assert older.errors == [
        "rules-topic:a-then-b: version 1 is older than the running version 2; raise `version` to replace it"
    ]


def test_record_key_must_name_the_rule() -> None:
    book = RuleBook()
    status = book.apply("other", A_THEN_B.format(version=1, first="A"))
    assert not status.ok
    assert status.errors == [
        "rules-topic:other: record key is 'other' but the document holds a-then-b"
    ]


@pytest.mark.parametrize("n", [1, 50])
def test_one_write_per_touched_key_per_message(n: int) -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    events = [{"id": f"e{i}", "user": "u1", "type": "A", "ts": i} for i in range(n)]
    ((p, msg),) = batch(events).items()
    det.handle(p, msg)
    writes = det.flush(p)
    assert set(writes) == {b"u1", progress_key(p)}
    assert det.flush(p) == {}  # nothing changed since


def _one(user: str, eid: str, type_: str, ts: int, source: str, seen: int, now: int) -> Batch:
    import orjson

    b = BatchBuilder()
    b.add_event(user, source, int(eid[1:]), now, [["a-then-b", ts, eid, seen]], orjson.dumps({}))
    msg = decode(b.encode())
    assert isinstance(msg, Batch)
    msg.events[0][5] = {"id": eid, "user": user, "type": type_, "ts": ts}
    return msg


def test_watermark_is_the_min_over_source_partitions_until_one_is_idle() -> None:
    rule = A_THEN_B.format(version=1, first="A").replace(
        "within: 1h", "within: 1h\nmax_out_of_orderness: 1s"
    )
    book = book_with(("a-then-b", rule))
    det = Detector(book, {}, PARTS, idle_ms=5_000)
    p = partition_for("u1", PARTS)
    # the ingest's ticks announce both source partitions
    det.handle(p, Tick(900, {"a-then-b": {"t:0": 5_000, "t:1": 5_000}}, {"t:0": 900, "t:1": 900}))
    # source partition 0 runs far ahead in event time ...
    det.handle(p, _one("u1", "e1", "C", 100_000, "t:0", 100_000, now=1_000))
    # ... partition 1's older events are not late: the watermark is min(100 s, 10 s) - 1 s
    out = det.handle(p, _one("u1", "e2", "A", 10_000, "t:1", 10_000, now=1_100))
    assert [d.kind for d in out.detections] == []
    # B waits in the out-of-order buffer until the watermark passes it
    out = det.handle(p, _one("u1", "e3", "B", 20_000, "t:1", 20_000, now=1_200))
    assert out.detections == []
    # partition 1 goes quiet for longer than idle_ms, and its ingest says it read it to the
    # end: partition 0 alone sets the watermark
    out = det.handle(p, Tick(9_000, {}, {}, ["t:0", "t:1"]))
    assert [(d.kind, d.stages) for d in out.detections] == [("match", {"a": ["e2"], "b": ["e3"]})]
    out = det.handle(p, _one("u1", "e4", "A", 50_000, "t:0", 100_000, now=9_100))
    assert [d.kind for d in out.detections] == ["late"]


def test_context_is_visible_to_conditions() -> None:
    gold = """
name: gold
version: 1
source: events
key: user
id: id
time: ts
context: {source: profiles, key: user}
stages:
  - name: delayed
    where: event.type == 'Delay' && has(context.tier) && context.tier == 'gold'
emit: {kind: offer, topic: offers, data: {tier: context.tier}}
"""
    import orjson

    book = book_with(("gold", gold))
    det = Detector(book, {}, PARTS)
    b = BatchBuilder()
    b.add_context("u1", "profiles:0", 0, {"user": "u1", "tier": "gold"})
    for i, user in enumerate(["u1", "u2"]):
        e = {"id": f"d{i}", "user": user, "type": "Delay", "ts": 10 + i}
        b.add_event(user, "events:0", i, 1, [["gold", e["ts"], e["id"], e["ts"]]], orjson.dumps(e))
    found = det.handle(partition_for("u1", PARTS), decode(b.encode())).detections
    assert [(d.key, d.data) for d in found] == [("u1", {"tier": "gold"})]


def test_same_version_with_another_document_is_rejected() -> None:
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    again = book.apply("a-then-b", A_THEN_B.format(version=1, first="A"))
    assert again.ok  # the same document again (a worker re-publishing its directory)
    changed = book.apply("a-then-b", A_THEN_B.format(version=1, first="X"))
    assert not changed.ok
    assert changed.errors == [
        "rules-topic:a-then-b: version 1 is already running with a different document; "
        "raise `version` to replace it"
    ]


def test_writes_are_coalesced_and_equal_per_message_flushes() -> None:
    """Many messages, one flush: one value per key, the same bytes as flushing each message."""
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    events = [
        {"id": f"e{i}", "user": f"u{i % 3}", "type": "AB"[i % 2], "ts": i * 10} for i in range(30)
    ]
    msgs = [batch([e], offset0=i) for i, e in enumerate(events)]
    each: dict[bytes, bytes] = {}
    det_each = Detector(book, each, PARTS)
    found_each = [d for m in msgs for d in run(det_each, each, m)]
    once: dict[bytes, bytes] = {}
    det_once = Detector(book, once, PARTS)
    found_once = [
        d for m in msgs for p, msg in m.items() for d in det_once.handle(p, msg).detections
    ]
    assert once == {}  # nothing written before the flush
    writes = {}
    for p in range(PARTS):
        w = det_once.flush(p)
        assert len(w) == len({k for k in w})  # one value per key
        writes.update(w)
    apply(once, writes)
    assert [d.id for d in found_once] == [d.id for d in found_each] and found_once
    # the same keys and partial matches (byte-equality does not hold: a per-message flush
    # drops idle states, which restarts their sequence counters)
    assert set(once) == set(each)
    runner = book.runner
    for key in once:
        if key.startswith(b"\x00"):
            assert once[key] == each[key]
            continue
        a, b = det_once.stored_state(key.decode()), det_each.stored_state(key.decode())
        assert a is not None and b is not None and a.rules.keys() == b.rules.keys()
        for name in a.rules:
            runs = [
                runner.describe_state(name, runner.state_from_bytes(name, s.rules[name][1]))
                for s in (a, b)
            ]
            assert runs[0] == runs[1]


def test_unflushed_state_is_visible_to_lookups_and_kept_when_the_cache_is_full() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    det.CACHE_MAX = 1
    ((p, msg),) = batch([{"id": "e1", "user": "u1", "type": "A", "ts": 10}]).items()
    det.handle(p, msg)
    assert table == {}
    stored = det.stored_state("u1")
    assert stored is not None and "a-then-b" in stored.rules
    # other keys of the same partition overflow the cache: u1's unflushed state survives
    others = [u for u in (f"x{i}" for i in range(200)) if partition_for(u, PARTS) == p][:5]
    for i, user in enumerate(others):
        det.handle(
            p, batch([{"id": f"o{i}", "user": user, "type": "C", "ts": 11}], offset0=1 + i)[p]
        )
    found = det.handle(p, batch([{"id": "e2", "user": "u1", "type": "B", "ts": 20}], offset0=9)[p])
    assert [d.stages for d in found.detections] == [{"a": ["e1"], "b": ["e2"]}]


def test_partial_match_counts_follow_the_flushes() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    run(
        det,
        table,
        batch([{"id": f"e{i}", "user": f"u{i}", "type": "A", "ts": i} for i in range(4)]),
    )
    assert det.partial_matches() == {"a-then-b": 4}
    run(det, table, batch([{"id": "f0", "user": "u0", "type": "B", "ts": 10}], offset0=4))
    assert det.partial_matches() == {"a-then-b": 3}
    # a new owner counts what it recovers from the table
    det2 = Detector(book, table, PARTS)
    for p in range(PARTS):
        det2.handle(p, Tick(0, {}))
    assert det2.partial_matches() == {"a-then-b": 3}


def test_steps_yield_inside_a_long_batch() -> None:
    table: dict[bytes, bytes] = {}
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, table, PARTS)
    det.YIELD_EVERY = 10
    events = [{"id": f"e{i}", "user": "u1", "type": "C", "ts": i} for i in range(35)]
    ((p, msg),) = batch(events).items()
    outcome = Outcome(p)
    assert sum(1 for _ in det.steps(p, msg, outcome)) == 3
    assert outcome.events == 35


def test_a_quiet_source_partition_whose_ingest_is_gone_holds_the_watermark() -> None:
    """No event from ``t:1`` for longer than ``idle_ms``, but no tick says its ingest read it
    to the end (the worker that owns it stopped or crashed): its unread events must not
    become late, so it keeps holding the watermark; a later declaration idles it, and a
    declaration older than ``caught_ms`` counts no more."""
    rule = A_THEN_B.format(version=1, first="A").replace(
        "within: 1h", "within: 1h\nmax_out_of_orderness: 1s"
    )
    book = book_with(("a-then-b", rule))
    det = Detector(book, {}, PARTS, idle_ms=5_000, caught_ms=3_000)
    p = partition_for("u1", PARTS)
    det.handle(p, Tick(900, {"a-then-b": {"t:0": 5_000, "t:1": 5_000}}, {"t:0": 900, "t:1": 900}))
    det.handle(p, _one("u1", "e2", "A", 10_000, "t:1", 10_000, now=1_000))
    # t:1's owner declared it read to the end at 1 100, then stopped sending ticks
    det.handle(p, Tick(1_100, {}, {}, ["t:0", "t:1"]))
    # t:0 keeps going; its ingest's ticks declare t:0 only
    det.handle(p, _one("u1", "e3", "C", 100_000, "t:0", 100_000, now=8_000))
    out = det.handle(p, Tick(9_000, {}, {}, ["t:0"]))
    assert out.detections == []  # t:1 (declared at 1 100: stale by 9 000) still holds
    # t:1's unread event, read again by a new owner: not late, and it completes the match
    out = det.handle(p, _one("u1", "e4", "B", 11_000, "t:1", 11_000, now=9_100))
    assert out.detections == []  # buffered: the watermark is still 10 s - 1 s
    out = det.handle(p, Tick(15_000, {}, {}, ["t:0"]))
    assert out.detections == []  # t:1 had an event at 9 100, not declared since: holds
    # t:1's new owner reads it to the end: once quiet for idle_ms, it idles
    out = det.handle(p, Tick(15_100, {}, {}, ["t:0", "t:1"]))
    assert [(d.kind, d.stages) for d in out.detections] == [("match", {"a": ["e2"], "b": ["e4"]})]
    # the declarations are saved with the clocks, so a new owner of the keyed partition
    # resumes them
    import orjson

    saved = orjson.loads(det.flush(p)[progress_key(p)])
    assert saved["caught"] == {"t:0": 15_100, "t:1": 15_100}


def _reference_watermark(
    src_max: dict[str, int],
    src_last: dict[str, int],
    now: int,
    idle_ms: int,
    bound: int,
    caught: set[str],
) -> int:
    live = [
        ts
        for src, ts in src_max.items()
        if now - src_last.get(src, now) <= idle_ms or src not in caught
    ]
    return (min(live) if live else max(src_max.values())) - bound


def two_partitions(topic: str) -> int:
    """Partitions of every source topic of these tests."""
    return 2


@pytest.mark.parametrize("counts", [None, lambda topic: None, lambda topic: 3])
def test_a_partition_heard_from_first_may_lower_the_watermark(counts: Any) -> None:
    """Until every partition of the source topic was heard from, one heard from for the first
    time may lower the watermark (after a restart detect hears from the ingests one by one):
    its events are not late for it. Also when the partition count is not known."""
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, {}, PARTS, source_partitions=counts)
    p = partition_for("u1", PARTS)
    got = []
    for msg in [
        _one("u1", "e1", "A", 1_000, "events:0", 1_000, now=1_000),
        _one("u2", "e2", "A", 60_000, "events:0", 60_000, now=1_100),  # events:0 alone: 60 s
        _one("u1", "e3", "B", 5_000, "events:1", 5_000, now=1_200),  # events:1 first heard: 5 s
    ]:
        got += [(d.kind, d.stages) for d in det.handle(p, msg).detections]
    assert got == [("match", {"a": ["e1"], "b": ["e3"]})]


def test_the_watermark_never_goes_back_when_an_idle_partition_wakes() -> None:
    """Source events:1 idles, events:0 moves the watermark to 60 s; events:1's next event (its own clock at
    2 s) does not pull the watermark back: an event at 5 s is late, and the match it would
    have completed is not made."""
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(
        book, {}, PARTS, idle_ms=5_000, caught_ms=3_000, source_partitions=two_partitions
    )
    p = partition_for("u1", PARTS)
    steps = [
        Tick(
            900,
            {"a-then-b": {"events:0": 1_000, "events:1": 1_000}},
            {"events:0": 900, "events:1": 900},
        ),
        _one("u1", "e1", "A", 1_000, "events:0", 1_000, now=1_000),
        Tick(9_000, {}, {}, ["events:0", "events:1"]),  # events:1 quiet and read to the end: idle
        _one("u2", "e2", "A", 60_000, "events:0", 60_000, now=9_100),  # the watermark is 60 s
        _one(
            "u1", "e3", "B", 5_000, "events:1", 2_000, now=9_200
        ),  # events:1 again, its clock at 2 s
    ]
    got = []
    for msg in steps:
        got += [(d.kind, d.key, d.data.get("watermark")) for d in det.handle(p, msg).detections]
    assert got == [("late", "u1", 60_000)]
    # the highest clock is kept with the other clocks: a new owner of the partition resumes it
    import orjson

    writes = det.flush(p)
    assert orjson.loads(writes[progress_key(p)])["wm"] == {"a-then-b": 60_000}
    table = {k: v for k, v in writes.items() if v is not None}
    again = Detector(
        book, table, PARTS, idle_ms=5_000, caught_ms=3_000, source_partitions=two_partitions
    )
    late = again.handle(p, _one("u1", "e4", "B", 6_000, "events:1", 2_000, now=9_300)).detections
    assert [(d.kind, d.data["watermark"]) for d in late] == [("late", 60_000)]


@pytest.mark.parametrize(
    "caught",
    [{"events:0", "events:1", "events:2", "events:3", "events:4"}, {"events:0", "events:2"}, set()],
)
def test_watermarks_inside_one_batch_follow_every_source_and_idle_change(
    caught: set[str],
) -> None:
    """One message with events of several source partitions, ingest times that make some
    partitions idle mid-batch, and new partitions appearing: each event gets the watermark the
    definition gives with the clocks as of that event."""
    import random

    import orjson

    rule = A_THEN_B.format(version=1, first="A").replace(
        "within: 1h", "within: 1h\nmax_out_of_orderness: 1s"
    )
    book = book_with(("a-then-b", rule))
    idle_ms = 500
    det = Detector(book, {}, PARTS, idle_ms=idle_ms, caught_ms=10**9, source_partitions=lambda t: 5)
    p = partition_for("u1", PARTS)
    # the owners of ``caught`` declared them read to the end (the declarations stay fresh)
    det.handle(p, Tick(0, {}, {}, sorted(caught)))
    rnd = random.Random(5)
    builder = BatchBuilder()
    expected: dict[str, int] = {}
    src_max: dict[str, int] = {}
    src_last: dict[str, int] = {}
    now = 0
    seen_by_src: dict[str, int] = {}
    highest = -(10**18)
    for i in range(400):
        source = f"events:{rnd.randrange(5) if i > 20 else rnd.randrange(2)}"
        if rnd.random() < 0.05:
            now += rnd.choice([100, 600, 2_000])  # sometimes long enough to idle partitions
        ingest_ms = now
        ts = rnd.randrange(0, 100_000)
        seen = max(seen_by_src.get(source, 0), ts)
        seen_by_src[source] = seen
        # the detector's view after this event
        src_last[source] = ingest_ms
        src_max[source] = max(src_max.get(source, seen), seen)
        # ... which never goes back once all five source partitions were heard from
        wm = _reference_watermark(src_max, src_last, now, idle_ms, 1_000, caught)
        if len(src_max) == 5:
            highest = wm = max(highest, wm)
        expected[f"e{i}"] = wm
        # type A: an event the rule can use (others do not reach ``process``)
        event = {"id": f"e{i}", "user": "u1", "type": "A", "ts": ts}
        builder.add_event(
            "u1", source, i, ingest_ms, [["a-then-b", ts, f"e{i}", seen]], orjson.dumps(event)
        )
    msg = decode(builder.encode())
    runner = book.runner
    got: dict[str, int] = {}
    original = runner.process

    def spy(name: str, state: Any, key: str, event: Any, ts: int, **kw: Any) -> Any:
        got[kw["eid"]] = kw["watermark"]
        return original(name, state, key, event, ts, **kw)

    runner.process = spy  # type: ignore[method-assign]
    det.handle(p, msg)
    assert got == expected


TWO_RULES_OTHER = A_THEN_B.format(version=1, first="A").replace("name: a-then-b", "name: other")


def test_a_flush_serialises_only_the_rules_that_changed() -> None:
    """A key seen by two rules: a message that only one rule sees re-serialises that rule's
    state; the other's stored bytes are written unchanged."""
    import orjson

    table: dict[bytes, bytes] = {}
    book = book_with(
        ("a-then-b", A_THEN_B.format(version=1, first="A")), ("other", TWO_RULES_OTHER)
    )
    det = Detector(book, table, PARTS)
    p = partition_for("u1", PARTS)

    def message(offset: int, rules: list[str], type_: str) -> Batch:
        b = BatchBuilder()
        event = {"id": f"e{offset}", "user": "u1", "type": type_, "ts": offset}
        routes = [[name, offset, f"e{offset}", offset] for name in rules]
        b.add_event("u1", "events:0", offset, 1_000, routes, orjson.dumps(event))
        out = decode(b.encode())
        assert isinstance(out, Batch)
        return out

    det.handle(p, message(1, ["a-then-b", "other"], "A"))
    apply(table, det.flush(p))
    first = det.stored_state("u1")
    assert first is not None and set(first.rules) == {"a-then-b", "other"}
    runner = book.runner
    serialised: list[str] = []
    original = runner.state_to_bytes

    def spy(name: str, state: Any) -> bytes:
        serialised.append(name)
        return original(name, state)

    runner.state_to_bytes = spy  # type: ignore[method-assign]
    det.handle(p, message(2, ["a-then-b"], "A"))  # a second run (a C would change nothing)
    writes = det.flush(p)
    assert serialised == ["a-then-b"]
    apply(table, writes)
    # a new owner reads the same states back: "other" kept its bytes, "a-then-b" has the new
    det2 = Detector(book, table, PARTS)
    det2.handle(p, Tick(0, {}))
    again = det2.stored_state("u1")
    assert again is not None and again.rules["other"] == first.rules["other"]
    out = det2.handle(p, message(3, ["a-then-b", "other"], "B"))
    assert sorted(d.rule for d in out.detections) == ["a-then-b", "other"]
