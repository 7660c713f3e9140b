"""Messages of the internal keyed topic: event batches and time ticks.

The ingest sends one message per target partition and poll, carrying every event whose key
hashes to that partition, so Faust's per-message cost is paid once per batch. Keys hash with
Kafka's murmur2 (what Faust's table routing uses), so the worker that owns a key's partition of
the keyed topic also owns the key's row in the state table.

Batch::

    {"k": "b",                                            # seen: max event time of the rule
                                                          # in this source partition so far
     "s": ["flight-events:0", ...],                       # source topic:partition, by index
     "e": [[key, src, offset, ingest_ms, [[rule, ts, eid, seen], ...], event], ...],
     "c": [[key, src, offset, {field: value}], ...]}      # context updates

Tick (one per partition and interval, from every worker)::

    {"k": "t", "t": now_ms, "wm": {rule: {"topic:partition": max event time}},
     "last": {"topic:partition": wall ms of its last event}}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

__all__ = [
    "Batch",
    "BatchBuilder",
    "Partitioner",
    "Tick",
    "decode",
    "encode_tick",
    "partition_for",
    "partitioner",
]

_CACHE_MAX = 200_000


class Partitioner(dict[str, int]):
    """``partitioner[key]``: Kafka's default partition of ``key`` (utf-8) among
    :attr:`partitions`, memoised (at most ``_CACHE_MAX`` keys, then it starts again)."""

    def __init__(self, partitions: int) -> None:
        super().__init__()
        self.partitions = partitions

    def __missing__(self, key: str) -> int:
        if len(self) >= _CACHE_MAX:
            self.clear()
        p = self[key] = (murmur2(key.encode()) & 0x7FFFFFFF) % self.partitions
        return p


_PARTITIONERS: dict[int, Partitioner] = {}


def partitioner(partitions: int) -> Partitioner:
    """The shared :class:`Partitioner` for ``partitions``."""
    found = _PARTITIONERS.get(partitions)
    if found is None:
        found = _PARTITIONERS[partitions] = Partitioner(partitions)
    return found


def partition_for(key: str, partitions: int) -> int:
    """Kafka's default partition of ``key`` (utf-8) among ``partitions``; memoised."""
    return partitioner(partitions)[key]


@dataclass
class Batch:
    sources: list[str]
    events: list[list[Any]]
    context: list[list[Any]]


@dataclass
class Tick:
    """An ingest's clocks: its wall clock ``now``, per rule the max event time routed per
    source partition, the wall ms of the last event per source partition (``last``), and the
    source partitions it owns and has read to the end (``caught``): only those may become idle
    (see :mod:`agents.detect`)."""

    now: int
    watermarks: dict[str, dict[str, int]]
    last: dict[str, int] = field(default_factory=dict)
    caught: list[str] = field(default_factory=list)


@dataclass
class BatchBuilder:
    """Collects one poll's events for one partition of the keyed topic."""

    sources: list[str] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    context: list[list[Any]] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def _src(self, source: str) -> int:
        idx = self._index.get(source)
        if idx is None:
            idx = self._index[source] = len(self.sources)
            self.sources.append(source)
        return idx

    def add_event(
        self,
        key: str,
        source: str,
        offset: int,
        ingest_ms: int,
        routes: list[list[Any]],
        raw_event: bytes,
    ) -> None:
        """``raw_event`` is the original JSON bytes, embedded without re-encoding."""
        src = self._index.get(source)
        if src is None:
            src = self._src(source)
        self.events.append([key, src, offset, ingest_ms, routes, orjson.Fragment(raw_event)])

    def add_context(self, key: str, source: str, offset: int, fields: Mapping[str, Any]) -> None:
        self.context.append([key, self._src(source), offset, fields])

    def __len__(self) -> int:
        return len(self.events) + len(self.context)

    def encode(self) -> bytes:
        out: dict[str, Any] = {"k": "b", "s": self.sources, "e": self.events}
        if self.context:
            out["c"] = self.context
        return orjson.dumps(out)


def encode_tick(
    now_ms: int,
    watermarks: Mapping[str, Mapping[str, int]],
    last: Mapping[str, int] | None = None,
    caught: list[str] | None = None,
) -> bytes:
    return orjson.dumps(
        {"k": "t", "t": now_ms, "wm": watermarks, "last": last or {}, "caught": caught or []}
    )


def decode(value: bytes) -> Batch | Tick:
    """Decode one keyed-topic message; ValueError when it is neither kind."""
    msg = orjson.loads(value)
    kind = msg.get("k") if isinstance(msg, dict) else None
    if kind == "b":
        return Batch(msg["s"], msg["e"], msg.get("c", []))
    if kind == "t":
        return Tick(
            int(msg["t"]),
            dict(msg.get("wm") or {}),
            dict(msg.get("last") or {}),
            list(msg.get("caught") or ()),
        )
    raise ValueError(f"keyed topic message of unknown kind {kind!r}")
