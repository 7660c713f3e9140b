"""Keyed-topic messages: batches embed the original event bytes; ticks; Kafka's partitioner."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from agents import wire
from agents.wire import Batch, BatchBuilder, Tick, decode, encode_tick, partition_for


def test_partition_matches_kafka_default_partitioner() -> None:
    for key in ["P-1042", "passenger-7", "ü-key", "x" * 100]:
        parts = list(range(12))
        assert partition_for(key, 12) == DefaultPartitioner()(key.encode(), parts, parts)


def test_partitioner_memoises_and_starts_again_when_full(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "_CACHE_MAX", 3)
    part = wire.Partitioner(5)
    keys = [f"k{i}" for i in range(10)]
    assert [part[k] for k in keys] == [wire.partition_for(k, 5) for k in keys]
    assert 0 < len(part) <= 3
    assert wire.partitioner(5) is wire.partitioner(5)
    assert wire.partitioner(5) is not wire.partitioner(6)


def test_batch_round_trip() -> None:
    b = BatchBuilder()
    b.add_event("P-1", "flights:0", 7, 1000, [["r", 5, "e1", 5]], b'{"type": "A",  "x": 1}')
    b.add_event("P-2", "flights:1", 3, 1001, [["r", None, None, None]], b'{"type":"B"}')
    b.add_context("P-1", "customers:0", 2, {"tier": "gold"})
    msg = decode(b.encode())
    assert isinstance(msg, Batch)
    assert msg.sources == ["flights:0", "flights:1", "customers:0"]
    assert msg.events == [
        ["P-1", 0, 7, 1000, [["r", 5, "e1", 5]], {"type": "A", "x": 1}],
        ["P-2", 1, 3, 1001, [["r", None, None, None]], {"type": "B"}],
    ]
    assert msg.context == [["P-1", 2, 2, {"tier": "gold"}]]
    assert len(b) == 3


def test_tick_round_trip() -> None:
    assert decode(encode_tick(5, {"r": {"t:0": 4}}, {"t:0": 3})) == Tick(
        5, {"r": {"t:0": 4}}, {"t:0": 3}
    )
    assert decode(encode_tick(5, {}, {}, ["t:0", "t:1"])).caught == ["t:0", "t:1"]


def test_a_tick_of_an_older_worker_declares_nothing_caught_up() -> None:
    old = b'{"k": "t", "t": 5, "wm": {"r": {"t:0": 4}}, "last": {"t:0": 3}}'
    assert decode(old) == Tick(5, {"r": {"t:0": 4}}, {"t:0": 3}, [])


def test_unknown_message() -> None:
    with pytest.raises(ValueError, match="unknown kind 'x'"):
        decode(b'{"k": "x"}')
