"""Detect leaves out the events a rule's relevance predicate rejects (no Kafka).

Such an event neither loads its key nor reaches the engine: only whether it is late is told.
Over random batches and ticks (several keys and rules, event and processing time, late
events) a detector doing so must give what the same detector feeding every event gives:
the same detections of each kind per rule and key, the same late counts, and, once time is
past every deadline, the same table.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.detect import Detector
from agents.rulebook import RuleBook
from agents.wire import Batch, BatchBuilder, Tick, decode, partition_for

PARTS = 4
SOURCE = "events:0"

RULES = {
    "chain": """\
name: chain
source: events
key: user
id: id
time: ts
max_out_of_orderness: 2s
within: 10s
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: n
    after: relaxed
    negate: true
    where: event.type == 'N'
  - name: b
    after: relaxed
    where: event.type == 'B'
emit: {kind: alert, topic: alerts, data: {a: "stages.a[0].id"}}
on_timeout: {kind: alert, topic: timeouts}
""",
    "absence": """\
name: absence
source: events
key: user
id: id
time: ts
max_out_of_orderness: 1s
within: 8s
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
  - name: n
    after: relaxed
    negate: true
    where: event.type == 'N'
emit: {kind: offer, topic: offers}
on_timeout: {kind: alert, topic: timeouts}
""",
    "idle": """\
name: idle
source: events
key: user
id: id
within: 3s
stages:
  - name: carted
    where: event.type == 'A'
  - name: ordered
    after: relaxed
    negate: true
    where: event.type == 'B'
emit: {kind: alert, topic: alerts}
""",
}


def _detector(every_event: bool) -> tuple[Detector, dict[bytes, bytes]]:
    book = RuleBook()
    for name, text in RULES.items():
        status = book.apply(name, text)
        assert status.ok, status.errors
    if every_event:
        for name in book.runner.relevance:
            book.runner.relevance[name] = None
    else:
        assert all(book.runner.relevance[name] is not None for name in RULES)
    table: dict[bytes, bytes] = {}
    return Detector(book, table, PARTS), table


class Feed:
    """Routes events like the ingest (one source partition: ``seen`` is the running max
    event time per rule) into one Batch per keyed-topic partition, and ticks."""

    def __init__(self) -> None:
        self.book = RuleBook()
        for name, text in RULES.items():
            assert self.book.apply(name, text).ok
        self.offset = 0
        self.seen: dict[str, int] = {}
        self.now = 1_000

    def batch(self, events: list[dict[str, Any]]) -> list[tuple[int, Batch | Tick]]:
        out: dict[int, BatchBuilder] = {}
        for e in events:
            routes = []
            for name, _key, ts, eid in self.book.runner.route("events", e):
                seen = None
                if ts is not None:
                    seen = self.seen[name] = max(self.seen.get(name, ts), ts)
                routes.append([name, ts, eid, seen])
            b = out.setdefault(partition_for(e["user"], PARTS), BatchBuilder())
            b.add_event(e["user"], SOURCE, self.offset, self.now, routes, orjson.dumps(e))
            self.offset += 1
        msgs = [(p, decode(b.encode())) for p, b in sorted(out.items())]
        return msgs  # type: ignore[return-value]

    def tick(self, now: int, ahead: int = 0) -> list[tuple[int, Batch | Tick]]:
        self.now = max(self.now, now)
        wms = {name: {SOURCE: seen + ahead} for name, seen in self.seen.items()}
        return [(p, Tick(self.now, wms)) for p in range(PARTS)]


def _run(messages: list[tuple[int, Batch | Tick]], every_event: bool):
    det, table = _detector(every_event)
    found: dict[tuple[str, str, str], list[Any]] = {}
    late: dict[str, int] = {}
    for p, msg in messages:
        outcome = det.handle(p, msg)
        assert not outcome.failed
        for d in outcome.detections:
            found.setdefault((d.rule, d.key, d.kind), []).append(d)
            if d.kind == "late":
                late[d.rule] = late.get(d.rule, 0) + 1
        for k, v in det.flush(p).items():
            if v is None:
                table.pop(k, None)
            else:
                table[k] = v
    # the progress records: a tick that touches no key writes none, and the feeding of an
    # irrelevant event buffers it in its key's state (a key the tick then touches), so the
    # stored clocks may be one tick apart: the clocks held are compared instead
    rows = {k: v for k, v in table.items() if not k.startswith(b"\x00")}
    clocks = {p: (part.hw, part.src_max, part.src_last, part.now) for p, part in det._parts.items()}
    return found, late, rows, clocks


@st.composite
def _messages(draw: Any) -> list[tuple[int, Batch | Tick]]:
    feed = Feed()
    messages: list[tuple[int, Batch | Tick]] = []
    ts = 10_000
    n = 0
    for _ in range(draw(st.integers(1, 14))):
        if draw(st.integers(0, 3)) == 0:
            messages += feed.tick(feed.now + draw(st.integers(0, 4_000)))
            continue
        events = []
        for _ in range(draw(st.integers(1, 6))):
            ts += draw(st.integers(0, 1_500))
            back = draw(st.sampled_from([0, 0, 0, 1_500, 5_000]))  # late once past the bound
            e = {"id": f"e{n}", "user": f"u{draw(st.integers(0, 2))}", "ts": max(0, ts - back)}
            t = draw(st.sampled_from(["A", "A", "B", "B", "N", "X", "Y", None]))
            if t is not None:
                e["type"] = t
            events.append(e)
            n += 1
        feed.now += draw(st.integers(0, 2_000))
        messages += feed.batch(events)
    # time past every deadline, event and processing time
    messages += feed.tick(feed.now + 60_000, ahead=60_000)
    return messages


@settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(messages=_messages())
def test_leaving_out_irrelevant_events_changes_no_detection_and_no_row(messages: Any) -> None:
    every = _run(messages, every_event=True)
    left_out = _run(messages, every_event=False)
    # per rule, key and kind in order: a left-out event does not move its key's time, so
    # what that releases comes with the key's next event or the end of the message
    assert left_out[0] == every[0]
    assert left_out[1] == every[1]
    assert left_out[2] == every[2]
    assert left_out[3] == every[3]


def test_the_streams_reach_every_kind() -> None:
    kinds: set[str] = set()

    @settings(max_examples=40, derandomize=True, database=None, deadline=None)
    @given(messages=_messages())
    def collect(messages: Any) -> None:
        for rule, _key, kind in _run(messages, every_event=False)[0]:
            kinds.add(f"{rule}:{kind}")

    collect()
    assert kinds >= {
        "chain:match",
        "chain:timeout",
        "chain:late",
        "absence:match",
        "absence:timeout",
        "absence:late",
        "idle:match",
    }


def test_a_key_with_only_irrelevant_events_is_never_loaded_nor_stored() -> None:
    det, table = _detector(every_event=False)
    feed = Feed()
    loaded: list[str] = []
    real = det._working

    def spy(part: Any, key: str) -> Any:
        loaded.append(key)
        return real(part, key)

    det._working = spy  # type: ignore[method-assign]
    reads: list[bytes] = []

    class Table(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            reads.append(key)
            return super().get(key, default)

    det.table = Table(table)
    events = [
        {"id": "q1", "user": "quiet", "type": "X", "ts": 10_000},
        {"id": "b1", "user": "busy", "type": "A", "ts": 10_100},
        {"id": "q2", "user": "quiet", "ts": 10_200},
        {"id": "q3", "user": "quiet", "type": "Y", "ts": 10_300},
    ]
    for p, msg in feed.batch(events) + feed.tick(2_000):
        outcome = det.handle(p, msg)
        assert outcome.detections == []
        for k, v in det.flush(p).items():
            if v is not None:
                det.table[k] = v
    assert "quiet" not in loaded and b"quiet" not in reads
    assert "busy" in loaded and b"busy" in det.table
    assert b"quiet" not in det.table


def test_an_irrelevant_late_event_gives_exactly_one_late_detection() -> None:
    for every_event in (False, True):
        det, _table = _detector(every_event)
        feed = Feed()
        outs = []
        for p, msg in feed.batch(
            [
                {"id": "a1", "user": "u1", "type": "A", "ts": 50_000},
                {"id": "x1", "user": "u1", "type": "X", "ts": 40_000},  # 10 s behind
                {"id": "x2", "user": "u2", "ts": 40_000},  # an unseen key, no type at all
            ]
        ):
            outs += det.handle(p, msg).detections
        late = [(d.rule, d.key, d.data["id"], d.data["watermark"]) for d in outs]
        assert sorted(late) == [
            ("absence", "u1", "x1", 49_000),
            ("absence", "u2", "x2", 49_000),
            ("chain", "u1", "x1", 48_000),
            ("chain", "u2", "x2", 48_000),
        ], every_event
        assert all(d.kind == "late" for d in outs)


# -- where leaving out still differs: the rule's watermark going back --------------------
AB = """\
name: ab
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
emit: {kind: alert, topic: alerts}
"""


def _ab(every_event: bool) -> Detector:
    book = RuleBook()
    assert book.apply("ab", AB).ok
    if every_event:
        book.runner.relevance["ab"] = None
    return Detector(book, {}, PARTS, idle_ms=5_000, caught_ms=3_000, source_partitions=lambda t: 2)


def _msg(user: str, eid: str, type_: str, ts: int, source: str, seen: int, now: int) -> Any:
    b = BatchBuilder()
    e = {"id": eid, "user": user, "type": type_, "ts": ts}
    b.add_event(user, source, int(eid[1:]), now, [["ab", ts, eid, seen]], orjson.dumps(e))
    return decode(b.encode())


def test_a_left_out_event_and_a_fed_one_agree_when_a_partition_wakes() -> None:
    """An event fed to its key's state raises the key's own watermark, one left out does not:
    when an idle source partition wakes, the rule's watermark does not go back, so a later
    event between the two is late whether or not the key saw the event left out."""
    kinds = []
    for every_event in (True, False):
        det = _ab(every_event)
        p = partition_for("u1", PARTS)
        got = []
        steps = [
            Tick(
                900,
                {"ab": {"events:0": 1_000, "events:1": 1_000}},
                {"events:0": 900, "events:1": 900},
            ),
            _msg("u1", "e1", "A", 1_000, "events:0", 1_000, 1_000),
            # events:1 quiet and read to the end: idle, events:0 alone sets the watermark
            Tick(9_000, {}, {}, ["events:0", "events:1"]),
            _msg("u1", "e2", "X", 60_000, "events:0", 60_000, 9_100),  # the watermark is 60 s
            # events:1 has an event again, its clock at 2 s: the watermark stays at 60 s
            _msg("u1", "e3", "B", 5_000, "events:1", 2_000, 9_200),
            Tick(9_300, {"ab": {"events:1": 70_000}}, {"events:0": 9_300, "events:1": 9_300}),
        ]
        for msg in steps:
            got += [(d.kind, d.stages) for d in det.handle(p, msg).detections]
        kinds.append(got)
    assert kinds[1] == kinds[0]
    assert [kind for kind, _ in kinds[0]] == ["late"]  # e3, and no match
