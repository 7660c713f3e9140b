"""The ingest keeps back what a rule cannot use and cannot find late (agents/ingest.py)."""

from __future__ import annotations

from typing import Any

import orjson

from agents.detect import Detector
from agents.ingest import Ingest
from agents.rulebook import RuleBook
from agents.wire import decode, encode_tick
from tests.unit.runtime.test_ingest import RULE

# test_ingest's A-then-B rule, with a bound on out-of-orderness
EVENT_TIME = RULE.replace("time: ts\n", "time: ts\nmax_out_of_orderness: 1s\n")
assert "max_out_of_orderness: 1s" in EVENT_TIME

PROCESSING_TIME = EVENT_TIME.replace("time: ts\n", "").replace("max_out_of_orderness: 1s\n", "")
STRICT = EVENT_TIME.replace("name: a-then-b", "name: strict").replace(
    "after: relaxed", "after: strict"
)


def _ingest(*rules: tuple[str, str]) -> Ingest:
    book = RuleBook()
    for name, text in rules:
        status = book.apply(name, text)
        assert status.ok, status.errors
    return Ingest(book, partitions=4)


def _records(*events: dict[str, Any]) -> list[tuple]:
    return [("events", 0, i, None, orjson.dumps(e), []) for i, e in enumerate(events)]


def _routed(out: Any) -> dict[str, list[str]]:
    """event id -> the rules it was routed to, over every batch of a poll."""
    got: dict[str, list[str]] = {}
    for builder in out.batches.values():
        msg = decode(builder.encode())
        for _key, _src, _offset, _ms, routes, event in msg.events:
            got[event["id"]] = [r[0] for r in routes]
    return got


def test_processing_time_keeps_back_every_event_no_stage_can_use() -> None:
    ingest = _ingest(("a-then-b", PROCESSING_TIME))
    out = ingest.route_poll(
        _records(
            {"id": "e1", "user": "u1", "type": "A"},
            {"id": "e2", "user": "u1", "type": "C"},
            {"id": "e3", "user": "u2", "type": "C"},
            {"id": "e4", "user": "u1", "type": "B"},
            {"id": "e5", "user": "u1", "type": 7},  # not a string: no guard holds
        ),
        now_ms=1_000,
    )
    assert _routed(out) == {"e1": ["a-then-b"], "e4": ["a-then-b"]}
    assert out.kept_back == {"a-then-b": 3}
    assert out.events == 5 and not out.dead  # accepted, not dead-lettered
    assert ingest.src_last == {"events:0": 1_000}  # the source still counts as active


def test_event_time_routes_an_unusable_event_only_when_it_may_be_late() -> None:
    ingest = _ingest(("a-then-b", EVENT_TIME))
    out = ingest.route_poll(
        _records(
            {"id": "e1", "user": "u1", "type": "C", "ts": 10_000},
            {"id": "e2", "user": "u1", "type": "C", "ts": 9_000},  # 1 s behind: cannot be late
            {"id": "e3", "user": "u1", "type": "C", "ts": 8_999},  # more than 1 s behind
            {"id": "e4", "user": "u2", "type": "C", "ts": 20_000},
            {"id": "e5", "user": "u2", "type": "A", "ts": 1_000},  # usable: always routed
        )
    )
    assert _routed(out) == {"e3": ["a-then-b"], "e5": ["a-then-b"]}
    assert out.kept_back == {"a-then-b": 3}
    # the kept-back events still move the max event time the ticks carry
    assert ingest.max_ts == {"a-then-b": {"events:0": 20_000}}


def _run(events: list[dict[str, Any]], keep_back: bool) -> tuple[list[Any], dict[str, int]]:
    """Detections (kind, late event id) of ``events`` in one poll, then a tick far ahead."""
    book = RuleBook()
    assert book.apply("a-then-b", EVENT_TIME).ok
    if not keep_back:
        book.runner.relevance["a-then-b"] = None  # every event reaches detect
    ingest = Ingest(book, partitions=4)
    det = Detector(book, {}, 4)
    out = ingest.route_poll(_records(*events), now_ms=1)
    found: list[Any] = []
    for p, builder in sorted(out.batches.items()):
        found += det.handle(p, decode(builder.encode())).detections
    tick = decode(encode_tick(2, {"a-then-b": {"events:0": 10**9}}, ingest.src_last))
    for p in range(4):
        found += det.handle(p, tick).detections
    return [(d.kind, d.data.get("id") if d.kind == "late" else d.stages) for d in found], dict(
        out.kept_back
    )


def test_kept_back_events_are_never_the_late_ones() -> None:
    """Against detect: every event more than the bound behind its source's max reaches it, so
    the late ones are counted as when every event is sent; the matches are the same."""
    import random

    rnd = random.Random(3)
    ts = 100_000
    events = []
    for i in range(300):
        ts += rnd.randint(0, 400)
        back = rnd.choice([0, 0, 0, 500, 999, 1_000, 1_001, 3_000])  # some far behind
        kind = rnd.choice("AABCCCCCC")
        events.append(
            {"id": f"e{i}", "user": f"u{rnd.randint(1, 5)}", "type": kind, "ts": ts - back}
        )
    kept, kept_back = _run(events, keep_back=True)
    sent, nothing = _run(events, keep_back=False)
    assert nothing == {} and kept_back["a-then-b"] > 100
    assert sorted(map(repr, kept)) == sorted(map(repr, sent))
    assert any(kind == "late" for kind, _ in sent) and any(kind == "match" for kind, _ in sent)


def test_strict_contiguity_gets_every_event() -> None:
    ingest = _ingest(("strict", STRICT))
    out = ingest.route_poll(
        _records(
            {"id": "e1", "user": "u1", "type": "A", "ts": 10},
            {"id": "e2", "user": "u1", "type": "C", "ts": 20},
        )
    )
    assert _routed(out) == {"e1": ["strict"], "e2": ["strict"]}
    assert out.kept_back == {}


def test_two_rules_on_one_topic_each_get_what_they_can_use() -> None:
    other = EVENT_TIME.replace("name: a-then-b", "name: c-then-b").replace(
        "event.type == 'A'", "event.type == 'C'"
    )
    ingest = _ingest(("a-then-b", EVENT_TIME), ("c-then-b", other))
    out = ingest.route_poll(
        _records(
            {"id": "e1", "user": "u1", "type": "A", "ts": 10},
            {"id": "e2", "user": "u1", "type": "C", "ts": 20},
            {"id": "e3", "user": "u1", "type": "B", "ts": 30},
            {"id": "e4", "user": "u1", "type": "D", "ts": 40},
        )
    )
    assert _routed(out) == {"e1": ["a-then-b"], "e2": ["c-then-b"], "e3": ["a-then-b", "c-then-b"]}
    assert out.kept_back == {"a-then-b": 2, "c-then-b": 2}
