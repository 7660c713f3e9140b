"""The worker's Faust patch that positions stream partitions with delivery stopped.

faust-streaming 0.15 resumes the keyed topic's partitions after table recovery while its flow
runs, then seeks, then clears the stream queues: messages fetched in between were dropped
although the consumer had moved past them (the exactly_once crash test lost offers). The
patched ``perform_seek`` stops the flow first and leaves no stream partition unpositioned.
"""

from __future__ import annotations

import asyncio
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from app.faust_app import _seek_streams_before_delivery

KEYED = "app-keyed"
CHANGELOG = "app-state-changelog"


class _Tables:
    changelog_topics = {CHANGELOG}


class _Conf:
    def __init__(self, reset: str) -> None:
        self.consumer_auto_offset_reset = reset


class _App:
    def __init__(self, reset: str) -> None:
        self.tables = _Tables()
        self.conf = _Conf(reset)


class FakeConsumer:
    """The parts of a Faust consumer that ``perform_seek`` uses, recording every call."""

    def __init__(self, committed: dict[TP, int | None], reset: str = "earliest") -> None:
        self.app = _App(reset)
        self.committed = committed
        self.flow_active = True
        self.calls: list[Any] = []
        self._read_offset: dict[TP, int | None] = {}
        self._committed_offset: dict[TP, int | None] = {}

    def stop_flow(self) -> None:
        self.flow_active = False
        self.calls.append("stop_flow")

    async def seek_to_committed(self) -> dict[TP, int | None]:
        self.calls.append(("seek_to_committed", self.flow_active))
        return dict(self.committed)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: 100 for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.calls.append(("seek", tp, offset))
        self._read_offset[tp] = offset or None


def _perform_seek(consumer: FakeConsumer) -> None:
    _seek_streams_before_delivery()
    asyncio.run(Consumer.perform_seek(consumer))  # type: ignore[arg-type]


def test_flow_stops_before_the_seek_and_stays_stopped() -> None:
    consumer = FakeConsumer({TP(KEYED, 0): 5})
    _perform_seek(consumer)
    assert consumer.calls[:2] == ["stop_flow", ("seek_to_committed", False)]
    assert consumer.flow_active is False  # Faust's caller resumes it after clearing the queues
    assert consumer._read_offset == {TP(KEYED, 0): 5}
    assert consumer._committed_offset == {TP(KEYED, 0): 5}


def test_a_stream_partition_without_a_committed_offset_goes_to_the_reset_position() -> None:
    committed = {TP(KEYED, 0): 7, TP(KEYED, 1): None, TP(CHANGELOG, 1): None}
    consumer = FakeConsumer(committed)
    _perform_seek(consumer)
    seeks = [c for c in consumer.calls if c[0] == "seek"]
    assert seeks == [("seek", TP(KEYED, 1), 0)]  # changelog partitions are left to recovery
    assert consumer._read_offset[TP(KEYED, 1)] is None
    assert consumer._committed_offset == {TP(KEYED, 0): 7}


def test_latest_reset_seeks_to_the_end() -> None:
    consumer = FakeConsumer({TP(KEYED, 2): None}, reset="latest")
    _perform_seek(consumer)
    assert ("seek", TP(KEYED, 2), 100) in consumer.calls


def test_a_seek_with_the_flow_already_stopped_never_stops_it_again() -> None:
    """getmany seeks while the flow is stopped; recovery may resume the flow meanwhile to read
    the changelogs, and a second stop would leave it waiting for records forever."""
    _seek_streams_before_delivery()
    consumer = FakeConsumer({TP(KEYED, 0): 5})
    consumer.flow_active = False
    asyncio.run(Consumer.perform_seek(consumer))  # type: ignore[arg-type]
    assert "stop_flow" not in consumer.calls
    assert consumer.calls[0] == ("seek_to_committed", False)
