"""What a worker is waiting on: every asyncio task's stack and Faust's recovery state.

One WARNING record ``"worker state dump"`` carries both, so a stuck worker can be diagnosed
from its log:

- on ``SIGUSR1`` (``kill -USR1 <pid>``), once the worker is first ready (this replaces the
  thread dump to stderr that Faust's worker does on that signal);
- by itself, once per recovery, when Faust's table recovery still has changelog records to
  read but none arrived for :data:`STALL_AFTER` seconds (docs/runtime.md, "Limits, known":
  the rebalance-recovery stall).

The state is read from Faust's internals (faust-streaming 0.15); a field that is missing is
reported as such rather than failing the dump.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any

__all__ = ["STALL_AFTER", "dump", "install", "state", "task_stacks"]

log = logging.getLogger("kairos.diagnostics")

#: Seconds without a changelog record, while recovery still needs some, before the dump.
STALL_AFTER = 30.0
#: How often the stall check runs (seconds).
CHECK_EVERY = 5.0


def _tps(tps: Any) -> list[str]:
    return sorted(f"{tp.topic}:{tp.partition}" for tp in tps or ())


def _by_tp(mapping: Any) -> dict[str, Any]:
    return {f"{tp.topic}:{tp.partition}": v for tp, v in sorted(dict(mapping or {}).items())}


def _recovery(app: Any) -> dict[str, Any]:
    rec = app.tables.recovery
    now = time.monotonic()
    started = getattr(rec, "_recovery_started_at", None)
    received = getattr(rec, "_active_events_received_at", {})
    return {
        "in_recovery": rec.in_recovery,
        "completed": rec.completed.is_set(),
        "generation": getattr(rec, "_generation_id", None),
        "seconds_since_start": None if started is None else round(now - started, 1),
        "active": _tps(rec.active_tps),
        "standby": _tps(rec.standby_tps),
        "highwaters": _by_tp(rec.active_highwaters),
        "offsets": _by_tp(rec.active_offsets),
        "remaining": _by_tp(rec.active_remaining()),
        "seconds_since_event": {k: round(now - v, 1) for k, v in _by_tp(received).items()},
        "changelog_queue": app.tables.changelog_queue.qsize(),
    }


def _consumer(app: Any) -> dict[str, Any]:
    consumer = app.consumer
    try:
        assignment = _tps(consumer.assignment())
    except Exception as exc:  # not started, or stopped
        assignment = repr(exc)
    fetcher = app._fetcher
    return {
        "generation": app.consumer_generation_id,
        "rebalancing": app.rebalancing,
        "flow_active": consumer.flow_active,
        "flow_control_active": app.flow_control.is_active(),
        "assignment": assignment,
        "active_partitions": _tps(consumer._active_partitions),
        "paused_partitions": _tps(consumer._paused_partitions),
        "buffered_partitions": _tps(consumer._buffered_partitions),
        "read_offsets": _by_tp({tp: o for tp, o in consumer._read_offset.items() if o is not None}),
        "fetcher": {"started": fetcher.started, "stopped": fetcher._stopped.is_set()},
    }


def _worker(app: Any) -> dict[str, Any]:
    """What the worker itself set up on ``app`` (``app._kairos_state``, a callable)."""
    read = getattr(app, "_kairos_state", None)
    return read() if read is not None else {}


def state(app: Any) -> dict[str, Any]:
    """Faust's recovery and consumer state and the worker's own (paused keyed partitions,
    held transaction gates), as JSON-ready values."""
    out: dict[str, Any] = {}
    for name, read in (("recovery", _recovery), ("consumer", _consumer), ("worker", _worker)):
        try:
            out[name] = read(app)
        except Exception as exc:
            out[name] = f"unreadable: {exc!r}"
    return out


def _awaiting(coro: Any, limit: int) -> list[str]:
    """The frames of ``coro`` and of the coroutines it awaits, outermost first."""
    lines = []
    while coro is not None and len(lines) < limit:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        frame = frame or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "ag_await", None)
            or getattr(coro, "gi_yieldfrom", None)
        )
    return lines


def task_stacks(limit: int = 40) -> list[str]:
    """One entry per asyncio task of the running loop: its name, the await chain, and the
    future it waits on."""
    stacks = []
    for task in asyncio.all_tasks():
        lines = [task.get_name(), *_awaiting(task.get_coro(), limit)]
        waiter = getattr(task, "_fut_waiter", None)  # CPython's Task: what it is blocked on
        if waiter is not None:
            lines.append(f"waits on {waiter!r:.300}")
        stacks.append("\n".join(lines))
    return sorted(stacks)


def dump(app: Any, reason: str) -> None:
    """Log the state and every task's stack in one WARNING record (call it on the loop)."""
    log.warning(
        "worker state dump",
        extra={"reason": reason, "state": state(app), "tasks": task_stacks()},
    )


def stalled(app: Any, now: float, after: float = STALL_AFTER) -> bool:
    """True when recovery needs changelog records and none arrived for ``after`` seconds."""
    rec = app.tables.recovery
    started = getattr(rec, "_recovery_started_at", None)
    if not rec.in_recovery or started is None or not rec.need_recovery():
        return False
    received = getattr(rec, "_active_events_received_at", {})
    last = max(received.values(), default=started)
    return now - last >= after


def install(app: Any) -> None:
    """SIGUSR1 dumps; a recovery that stalls dumps once by itself."""

    @app.task
    async def _diagnostics() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, lambda: dump(app, "SIGUSR1"))
        dumped_for = None
        while True:
            await asyncio.sleep(CHECK_EVERY)
            started = getattr(app.tables.recovery, "_recovery_started_at", None)
            if started != dumped_for and stalled(app, time.monotonic()):
                dumped_for = started
                dump(app, f"table recovery received no changelog record for {STALL_AFTER:.0f} s")
