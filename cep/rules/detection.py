"""What a rule produces: a :class:`Detection`, and its CloudEvents 1.0 form.

The CloudEvent ``id`` is a UUID (version 5) of the rule name, version, key, kind and the ids
of the matched events, so the same detection re-emitted after a retry carries the same id and
a consumer can drop the duplicate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

#: Namespace of Kairos detection ids (uuid5 of a fixed URL).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/kairos-cep/kairos/detections")


@dataclass(frozen=True, slots=True)
class Detection:
    """A match, a timed-out partial match or a late event of one rule and key."""

    rule: str
    version: int
    key: Any
    kind: str  # "match" | "timeout" | "late"
    stages: dict[str, list[Any]]  # stage -> event ids
    start: int | None  # epoch millis of the first event
    end: int | None  # epoch millis of the last event (timeout: when it timed out)
    data: Any = None
    action: str | None = None  # "offer" | "alert"; None for late events
    topic: str | None = None  # where the runtime sends the CloudEvent
    errors: list[str] = field(default_factory=list)  # data expressions that failed

    @property
    def id(self) -> str:
        """Deterministic id: same rule, version, key, kind and event ids -> same id."""
        canon = orjson.dumps(
            [self.rule, self.version, self.key, self.kind, self.stages], option=orjson.OPT_SORT_KEYS
        )
        return str(uuid.uuid5(ID_NAMESPACE, canon.decode()))

    def to_dict(self) -> dict[str, Any]:
        """The backtest's output line."""
        return {
            "rule": self.rule,
            "version": self.version,
            "key": self.key,
            "kind": self.kind,
            "stages": self.stages,
            "start": self.start,
            "end": self.end,
            "data": self.data,
        }

    def to_cloudevent(self) -> dict[str, Any] | None:
        """CloudEvents 1.0 structured-mode JSON object (None for late events: no action)."""
        if self.action is None:
            return None
        event: dict[str, Any] = {
            "specversion": "1.0",
            "id": self.id,
            "source": f"/kairos/rules/{self.rule}/v{self.version}",
            "type": f"kairos.{self.action}",
            "subject": str(self.key),
            "datacontenttype": "application/json",
            "data": self.data,
            "kairoskind": self.kind,
        }
        if self.end is not None:
            event["time"] = rfc3339(self.end)
        return event


def rfc3339(ms: int) -> str:
    """Epoch millis -> RFC 3339 UTC with millisecond precision."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
