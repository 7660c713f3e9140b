"""What a rule produces: a :class:`Detection`, and its CloudEvents 1.0 form.

The CloudEvent ``id`` is a UUID (version 5) of the rule name, version, key, kind and the ids
of the matched events, so the same detection re-emitted after a retry carries the same id and
a consumer can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson

#: Namespace of Kairos detection ids (uuid5 of a fixed URL).
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/kairos-cep/kairos/detections")
#: SHA-1 state after the namespace's bytes: ``uuid5`` hashes them before the name.
_ID_HASH = hashlib.sha1(ID_NAMESPACE.bytes)


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
        return uuid5_text(canon)

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


def uuid5_text(name: bytes) -> str:
    """``str(uuid.uuid5(ID_NAMESPACE, name.decode()))`` for UTF-8 ``name``, without the
    :class:`uuid.UUID` object: the SHA-1 of the namespace and name, its first 16 bytes in
    hex with the version (5) and the RFC 4122 variant set, dashed."""
    h = _ID_HASH.copy()
    h.update(name)
    x = h.hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


#: The 17th hex digit with the variant bits set (``10xx``): its two low bits kept.
_VARIANT = {f"{i:x}": f"{8 | (i & 3):x}" for i in range(16)}


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MS_END = 253_402_300_800_000  # 10000-01-01T00:00:00Z: 4-digit years below
_day: tuple[int, str] = (-1, "")  # the last day formatted: (days since the epoch, "YYYY-MM-DD")
_D2 = tuple(f"{i:02d}" for i in range(60))
_D3 = tuple(f"{i:03d}" for i in range(1000))


def rfc3339(ms: int) -> str:
    """Epoch millis -> RFC 3339 UTC with millisecond precision."""
    global _day
    if type(ms) is int and 0 <= ms < _MS_END:
        # the same text as below, by arithmetic (UTC days are 86 400 s); the date of the
        # last day asked is kept
        secs, milli = divmod(ms, 1000)
        days, secs = divmod(secs, 86_400)
        day, text = _day
        if day != days:
            text = date.fromordinal(_EPOCH_ORDINAL + days).isoformat()
            _day = (days, text)
        hours, secs = divmod(secs, 3600)
        minutes, secs = divmod(secs, 60)
        return f"{text}T{_D2[hours]}:{_D2[minutes]}:{_D2[secs]}.{_D3[milli]}Z"
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
