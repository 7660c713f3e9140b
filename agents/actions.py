"""Actions: detections → CloudEvents records, per-key history, live feed.

``Detection.to_cloudevent()`` (from :mod:`cep.rules`) gives the structured-mode CloudEvent
with its deterministic id; a record is ``(topic, key, JSON bytes)``. Late events yield no
CloudEvent: they are counted, never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["ActionRecord", "LiveFeed", "merge_history", "to_records"]


@dataclass(frozen=True)
class ActionRecord:
    topic: str
    key: bytes
    value: bytes
    cloudevent: dict[str, Any]
    detection: Any


def to_records(detections: Iterable[Any]) -> list[ActionRecord]:
    out: list[ActionRecord] = []
    for det in detections:
        if det.kind == "late" or not det.topic:
            continue
        event = det.to_cloudevent()
        if event is None:
            continue
        out.append(ActionRecord(det.topic, str(det.key).encode(), orjson.dumps(event), event, det))
    return out


def merge_history(raw: bytes | None, new: list[dict[str, Any]], size: int) -> bytes:
    """The key's history (newest last, at most ``size``) with ``new`` appended, as bytes."""
    old: list[dict[str, Any]] = orjson.loads(raw) if raw else []
    seen = {e.get("id") for e in old}
    merged = old + [e for e in new if e.get("id") not in seen]
    return orjson.dumps(merged[-size:])


class LiveFeed:
    """Recent CloudEvents of this worker (bounded) and fan-out to live subscribers."""

    def __init__(self, size: int = 1000, queue_size: int = 1000) -> None:
        self.recent: deque[tuple[str, dict[str, Any]]] = deque(maxlen=size)
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._queue_size = queue_size

    def publish(self, events: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """``(rule name, CloudEvent)`` pairs, oldest first."""
        for rule, event in events:
            self.recent.append((rule, event))
            for queue in self._subscribers:
                with contextlib.suppress(asyncio.QueueFull):  # a slow reader loses events
                    queue.put_nowait(event)

    def query(self, rule: str | None, kind: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first. ``kind``: ``offer``/``alert`` (the action) or ``match``/``timeout``."""
        out: list[dict[str, Any]] = []
        for name, event in reversed(self.recent):
            if rule and name != rule:
                continue
            if kind and event.get("type") != f"kairos.{kind}" and event.get("kairoskind") != kind:
                continue
            out.append(event)
            if len(out) >= limit:
                break
        return out

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
