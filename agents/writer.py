"""Coalesced table writes of the detect agent, and when the keyed topic's offsets may advance.

The detect agent sends each message's detections at once (an offer's latency does not wait for
any table write), marks the message's keys dirty in the :class:`~agents.detect.Detector` and
hands the message here. A **flush** then persists every dirty key once, however many messages
touched it since the previous flush:

1. at_least_once: wait until Kafka acknowledged every detection and dead letter sent since the
   previous flush (a state must never reach the changelog before the detections it produced:
   the replay after a crash skips events the recovered state already applied);
2. write each dirty key (local store + one changelog record), the keys' merged detection
   history, and the partition's progress record last;
3. ack the flushed keyed-topic messages: only then may Faust commit their offsets, and Faust
   flushes the producer (these changelog records included) before it commits. A committed
   offset therefore never outruns the state in the changelog; after a crash the messages since
   the last flush are read again and the progress record's source offsets skip what the
   recovered state already holds.

The event loop: a flush lets the worker's other tasks run before it serialises a partition's
dirty keys (waiting for the sends does, else ``asyncio.sleep(0)``), after every ``chunk`` keys
(128) and after that partition's writes, so neither the message that led to it nor the detect
agent's next message runs in the same turn of the loop, and a web lookup waits for one chunk's
writes at most. A chunk's keys leave the dirty set the web view reads from memory only as
:meth:`Detector.flush` serialises them, and are in the table before the next yield: a lookup
between two chunks reads each key either from memory or from the table, never an older state.
The progress record comes with the last chunk.

When coalescing, a partition is flushed once its oldest unflushed message is ``interval``
seconds old, or (the partition with the oldest message first) once ``max_messages`` messages
of all partitions wait, when a partition is revoked, and when the worker stops. The agent
flushes one due partition per message (:meth:`StateWriter.next_due`), and partitions that
come due together are flushed ``interval / n`` apart (``n`` partitions waiting), so the
partitions' flushes spread out over the interval instead of all of them stopping it at once. Otherwise the
agent flushes every message at once and Faust acks it: under exactly_once (inside the
partition's transaction: the writes, the detections and the offsets commit atomically), and
under at_least_once unless ``KAIROS_COALESCE_STATE_WRITES`` is on (``app/settings.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from agents.actions import merge_history
from agents.detect import Detector

__all__ = ["StateWriter"]

Write = Callable[[str, int, bytes, bytes | None], Awaitable[None]]


@dataclass
class _Pending:
    """What one partition produced since its last flush."""

    sent: list[Awaitable[Any]] = field(default_factory=list)  # detections, dead letters
    history: dict[bytes, list[dict[str, Any]]] = field(default_factory=dict)
    acks: list[Any] = field(default_factory=list)  # keyed-topic events, acked after the flush
    messages: int = 0
    oldest: float = 0.0  # monotonic time of its first message since the last flush


class StateWriter:
    """Decides when the detect agent's changes are written, and writes them.

    ``write(table, partition, key, value)`` sets (None: deletes) ``key`` in ``table``
    (``"state"`` or ``"history"``) and sends its changelog record; ``history(key)`` reads the
    history table; ``ack(event)`` acknowledges a keyed-topic event to Faust. All the work of one
    partition runs under :attr:`lock`, which the agent also holds while it applies a message.
    """

    STATE = "state"
    HISTORY = "history"

    def __init__(
        self,
        detector: Detector,
        write: Write,
        history: Callable[[bytes], bytes | None],
        ack: Callable[[Any], Awaitable[Any]],
        *,
        history_size: int,
        wait_for_sends: bool = True,
        interval: float = 0.5,
        max_messages: int = 500,
        on_flush: Callable[[], None] | None = None,
        chunk: int = 128,
    ) -> None:
        self.detector = detector
        self._write = write
        self._history = history
        self._ack = ack
        self.history_size = history_size
        self.wait_for_sends = wait_for_sends
        self.interval = interval
        self.max_messages = max_messages
        self.on_flush = on_flush
        self.chunk = chunk  # keys written between two yields to the event loop
        self.lock = asyncio.Lock()
        self._pending: dict[int, _Pending] = {}
        self._messages = 0
        self._last_flush = float("-inf")  # monotonic end of the last partition's flush
        self.flushes = 0

    def add(
        self,
        partition: int,
        sent: Iterable[Awaitable[Any]],
        history: Iterable[tuple[bytes, dict[str, Any]]],
        event: Any | None,
    ) -> None:
        """Record one applied message: what it sent, its CloudEvents per key, its event."""
        pending = self._pending.get(partition)
        if pending is None:
            pending = self._pending[partition] = _Pending()
        pending.sent.extend(sent)
        for key, cloudevent in history:
            pending.history.setdefault(key, []).append(cloudevent)
        if event is not None:
            pending.acks.append(event)
        if not pending.messages:
            pending.oldest = time.monotonic()
        pending.messages += 1
        self._messages += 1

    def next_due(self) -> int | None:
        """The partition to flush now: the one with the oldest unflushed message, when
        ``max_messages`` messages wait in all, or when that message is ``interval`` old and
        the previous flush ended at least ``interval / n`` ago (``n``: the partitions with
        messages waiting; a message ``2 * interval`` old does not wait for that); else None.

        The spacing staggers the partitions: started together, they would all come due
        within a few messages of each other every ``interval``, and the agent, which waits
        for each flush, would stop for all of them at once (at 5 000 events/s over 4
        partitions, ~50 ms every 0.5 s: the p99 of produce → alert). Spaced, each stop is one
        partition's, and they settle ``interval / n`` apart."""
        oldest: tuple[float, int] | None = None
        waiting = 0
        for partition, pending in self._pending.items():
            if pending.messages:
                waiting += 1
                if oldest is None or pending.oldest < oldest[0]:
                    oldest = (pending.oldest, partition)
        if oldest is None:
            return None
        if self._messages >= self.max_messages:
            return oldest[1]
        now = time.monotonic()
        age = now - oldest[0]
        if age < self.interval:
            return None
        if age < 2 * self.interval and now - self._last_flush < self.interval / waiting:
            return None
        return oldest[1]

    def due(self) -> bool:
        """Whether a partition's pending messages are old or many enough to flush."""
        return self.next_due() is not None

    def pending_partitions(self) -> list[int]:
        return sorted(set(self._pending) | set(self.detector.cached_partitions()))

    async def flush(self, partitions: Iterable[int] | None = None, *, ack: bool = True) -> int:
        """Persist the changes of ``partitions`` (default: all), then ack their messages
        (``ack=False``: a revoked partition, whose offsets Faust no longer commits).
        The caller holds :attr:`lock`. Returns the number of table records written."""
        numbers = self.pending_partitions() if partitions is None else list(partitions)
        written = 0
        try:
            for partition in numbers:
                written += await self._flush_one(partition, ack)
        finally:
            self._messages = sum(p.messages for p in self._pending.values())
        self.flushes += 1
        if self.on_flush is not None:
            self.on_flush()
        return written

    async def _flush_one(self, partition: int, ack: bool) -> int:
        pending = self._pending.pop(partition, None) or _Pending()
        if pending.sent and self.wait_for_sends:
            await asyncio.gather(*pending.sent)  # raises when Kafka refused a detection
        else:
            await asyncio.sleep(0)  # the message's work so far and its writes: two turns
        write = self._write
        detector, chunk = self.detector, self.chunk
        while True:
            writes = detector.flush(partition, chunk)
            for key, value in writes.items():
                await write(self.STATE, partition, key, value)
            if not detector.dirty(partition):
                break  # the last chunk carried the progress record
            # A web lookup in between reads every key right: written to the table, or
            # still dirty (read from memory). The agent waits: it needs the lock.
            await asyncio.sleep(0)
        for key, events in pending.history.items():
            merged = merge_history(self._history(key), events, self.history_size)
            await write(self.HISTORY, partition, key, merged)
        if ack:
            for event in pending.acks:
                await self._ack(event)
        self._last_flush = time.monotonic()
        await asyncio.sleep(0)  # the partition is written: let the other tasks in
        return len(writes) + len(pending.history)

    def drop(self, partition: int) -> None:
        """Forget what ``partition`` has pending (its messages will be read again)."""
        self._pending.pop(partition, None)
