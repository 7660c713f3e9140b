"""What the engine hands out: matches, timeouts, and the context of iterative conditions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cep.buffer import NodeId, SharedBuffer, Version


@dataclass(slots=True)
class Match:
    """A completed match: stage name -> events (in order), first and last timestamps."""

    events: dict[str, list[Any]]
    start: int
    end: int


@dataclass(slots=True)
class Timeout:
    """A partial match whose window expired: events matched so far and when it timed out."""

    events: dict[str, list[Any]]
    timestamp: int
    start: int = -1


class ConditionContext:
    """Read-only view given to iterative conditions: events matched so far in this run."""

    __slots__ = ("_buffer", "_matched", "_node", "_version", "timestamp")

    def __init__(
        self, buffer: SharedBuffer, node: NodeId | None, version: Version, ts: int
    ) -> None:
        self._buffer = buffer
        self._node = node
        self._version = version
        self._matched: dict[str, list[Any]] | None = None
        self.timestamp = ts

    def events_for(self, name: str) -> tuple[Any, ...]:
        """Events already matched to stage ``name`` in this partial match (oldest first)."""
        if self._matched is None:
            paths = self._buffer.extract(self._node, self._version)
            self._matched = self._buffer.materialize(paths[0])[0] if paths else {}
        return tuple(self._matched.get(name, ()))

    get_events_for_pattern = events_for
