"""StateWriter: the order of sends, writes and acks, and when it flushes (no Kafka)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from agents.detect import Detector, progress_key
from agents.writer import StateWriter
from tests.unit.runtime.test_detect import A_THEN_B, PARTS, batch, book_with


class Log:
    """Records writes and acks in the order they happen."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Any]] = []
        self.tables: dict[str, dict[bytes, bytes]] = {"state": {}, "history": {}}

    async def write(self, table: str, partition: int, key: bytes, value: bytes | None) -> None:
        self.steps.append(("write", (table, key)))
        if value is None:
            self.tables[table].pop(key, None)
        else:
            self.tables[table][key] = value

    async def ack(self, event: Any) -> None:
        self.steps.append(("ack", event))


def setup(**kwargs: Any) -> tuple[Detector, StateWriter, Log]:
    log = Log()
    book = book_with(("a-then-b", A_THEN_B.format(version=1, first="A")))
    det = Detector(book, log.tables["state"], PARTS)
    writer = StateWriter(
        det, log.write, log.tables["history"].get, log.ack, history_size=5, **kwargs
    )
    return det, writer, log


def apply(det: Detector, writer: StateWriter, events: list[dict[str, Any]], offset0: int) -> int:
    ((p, msg),) = batch(events, offset0=offset0).items()
    det.handle(p, msg)
    return p


async def test_sends_are_acknowledged_before_the_state_and_messages_acked_after_it() -> None:
    det, writer, log = setup()
    sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    p = apply(det, writer, [{"id": "e1", "user": "u1", "type": "A", "ts": 1}], 0)
    writer.add(p, [sent], [(b"u1", {"id": "x1"})], "m1")
    p = apply(det, writer, [{"id": "e2", "user": "u1", "type": "C", "ts": 2}], 1)
    writer.add(p, [], [], "m2")
    flush = asyncio.ensure_future(writer.flush())
    await asyncio.sleep(0.01)
    assert not flush.done() and log.steps == []  # the detection is not acknowledged yet
    sent.set_result(None)
    await flush
    assert log.steps == [
        ("write", ("state", b"u1")),  # once for two messages
        ("write", ("state", progress_key(p))),
        ("write", ("history", b"u1")),
        ("ack", "m1"),
        ("ack", "m2"),
    ]
    assert writer.flushes == 1 and not writer.due()


async def test_a_refused_detection_writes_nothing_and_acks_nothing() -> None:
    det, writer, log = setup()
    refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    refused.set_exception(RuntimeError("broker said no"))
    p = apply(det, writer, [{"id": "e1", "user": "u1", "type": "A", "ts": 1}], 0)
    writer.add(p, [refused], [], "m1")
    with pytest.raises(RuntimeError, match="broker said no"):
        await writer.flush()
    assert log.steps == []


async def test_revocation_flushes_without_acking() -> None:
    det, writer, log = setup()
    p = apply(det, writer, [{"id": "e1", "user": "u1", "type": "A", "ts": 1}], 0)
    writer.add(p, [], [], "m1")
    await writer.flush([p], ack=False)
    assert [s[0] for s in log.steps] == ["write", "write"]
    assert not writer.due()


async def test_exactly_once_does_not_wait_for_sends() -> None:
    det, writer, log = setup(wait_for_sends=False)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    p = apply(det, writer, [{"id": "e1", "user": "u1", "type": "A", "ts": 1}], 0)
    writer.add(p, [never], [], None)
    await asyncio.wait_for(writer.flush([p]), 1)
    assert [s[1][1] for s in log.steps] == [b"u1", progress_key(p)]


async def test_due_after_max_messages_or_the_interval() -> None:
    _det, writer, _log = setup(interval=0.05, max_messages=3)
    assert not writer.due()
    writer.add(0, [], [], "m1")
    assert not writer.due()
    await asyncio.sleep(0.06)
    assert writer.due()
    _det, writer, _log = setup(interval=60, max_messages=3)
    for i in range(3):
        assert not writer.due()
        writer.add(0, [], [], f"m{i}")
    assert writer.due()


async def test_the_partition_with_the_oldest_message_is_due_first_and_alone() -> None:
    """Partitions come due one at a time, oldest first, so the agent flushes one partition
    between two messages instead of all of them at once."""
    _det, writer, _log = setup(interval=0.05, max_messages=100)
    writer.add(2, [], [], "m1")
    await asyncio.sleep(0.03)
    writer.add(0, [], [], "m2")
    writer.add(2, [], [], "m3")
    assert writer.next_due() is None
    await asyncio.sleep(0.03)
    assert writer.next_due() == 2  # 0.06 s old; partition 0's first message 0.03 s
    await writer.flush([2])
    assert writer.next_due() is None
    await asyncio.sleep(0.03)
    assert writer.next_due() is None  # 0.06 s old, but the last flush ended 0.03 s ago
    await asyncio.sleep(0.025)
    assert writer.next_due() == 0
    # max_messages counts every partition's messages; the oldest partition goes first
    _det, writer, _log = setup(interval=60, max_messages=3)
    writer.add(1, [], [], "a")
    writer.add(3, [], [], "b")
    assert writer.next_due() is None
    writer.add(3, [], [], "c")
    assert writer.next_due() == 1
    await writer.flush([1])
    assert writer.next_due() is None  # two messages wait now


async def test_partitions_that_come_due_together_are_flushed_interval_over_n_apart() -> None:
    """Four partitions whose messages came together: one flush now, the next ones each a
    quarter of the interval after the previous one ended, not all within a few messages."""
    interval = 0.2
    _det, writer, _log = setup(interval=interval, max_messages=1000)
    for p in range(4):
        writer.add(p, [], [], f"m{p}")
    await asyncio.sleep(interval)
    loop = asyncio.get_running_loop()
    flushed: list[tuple[int, float]] = []
    while len(flushed) < 4:
        due = writer.next_due()
        if due is None:
            await asyncio.sleep(0.005)
            continue
        await writer.flush([due])
        flushed.append((due, loop.time()))
    assert sorted(p for p, _ in flushed) == [0, 1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(flushed)]
    # n partitions waiting: interval / n after the previous flush (n = 3, then 2, then 1)
    assert gaps[0] >= interval / 3 - 0.002
    assert gaps[1] >= interval / 2 - 0.002
    # a message 2 * interval old does not wait for the spacing
    assert writer.next_due() is None
    writer.add(0, [], [], "late")
    await asyncio.sleep(2 * interval)
    writer._last_flush = time.monotonic()  # as if a flush had just ended
    assert writer.next_due() == 0


async def test_flush_lets_other_tasks_in_between_partitions() -> None:
    det, writer, log = setup()
    parts = set()
    for i, user in enumerate(f"u{n}" for n in range(40)):
        parts.add(apply(det, writer, [{"id": f"e{i}", "user": user, "type": "A", "ts": i}], i))
    assert len(parts) >= 2
    seen: list[int] = []  # how many writes another task saw done, each time it ran

    async def watch() -> None:
        while True:
            seen.append(len(log.steps))
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    await writer.flush()
    watcher.cancel()
    # the step count after each partition's writes (its progress record is its last write)
    ends = [i + 1 for i, (_kind, (_table, key)) in enumerate(log.steps) if key.startswith(b"\x00p")]
    assert len(ends) == len(parts)
    assert set(seen) <= {0, *ends}  # never in the middle of a partition's writes
    assert set(ends[:-1]) <= set(seen)  # and between every two partitions


async def test_a_large_partition_is_written_in_chunks_each_key_readable_in_between() -> None:
    """More dirty keys than ``chunk``: other tasks run between chunks, and whenever they run
    every key is either written to the table or still dirty (the web view reads it from
    memory); the progress record is the partition's last write."""
    from agents.wire import partition_for

    det, writer, log = setup(chunk=10)
    users = [u for u in (f"u{n}" for n in range(400)) if partition_for(u, PARTS) == 0][:35]
    assert len(users) == 35
    for i, user in enumerate(users):
        apply(det, writer, [{"id": f"e{i}", "user": user, "type": "A", "ts": i}], i)
    table = log.tables["state"]
    views: list[tuple[int, int]] = []  # (keys written, keys still dirty) each time it ran

    async def watch() -> None:
        while True:
            dirty = det._parts[0].dirty
            written = [u for u in users if u.encode() in table]
            assert all(u in dirty or u.encode() in table for u in users)
            views.append((len(written), len(dirty)))
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0)
    await writer.flush([0])
    await asyncio.sleep(0)
    watcher.cancel()
    with pytest.raises(asyncio.CancelledError):
        await watcher  # (an assertion that failed inside it would be raised here)
    assert (10, 25) in views and (20, 15) in views and (30, 5) in views  # between chunks
    assert views[-1] == (35, 0)
    keys = [key for _kind, (_table, key) in log.steps]
    assert keys[-1] == progress_key(0) and keys.count(progress_key(0)) == 1
