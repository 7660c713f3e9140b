"""Actions: detections → CloudEvents records and the per-key history.

The cluster-wide feed of recent detections is :mod:`agents.feed`.

``Detection.to_cloudevent()`` (from :mod:`cep.rules`) gives the structured-mode CloudEvent
with its deterministic id; a record is ``(topic, key, JSON bytes)``. Late events yield no
CloudEvent: they are counted, never sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["ActionRecord", "merge_history", "to_records"]


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
