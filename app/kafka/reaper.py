"""Stop every live local cluster when the Python process exits or is told to terminate."""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

_stoppers: dict[int, Callable[[], None]] = {}
_lock = threading.Lock()
_installed = False


def register(key: int, stop: Callable[[], None]) -> None:
    """Run ``stop`` at interpreter exit or on SIGTERM/SIGHUP unless ``unregister``-ed first."""
    global _installed
    with _lock:
        _stoppers[key] = stop
        if not _installed:
            atexit.register(stop_all)
            _install_signal_handlers()
            _installed = True


def unregister(key: int) -> None:
    with _lock:
        _stoppers.pop(key, None)


def stop_all() -> None:
    with _lock:
        stoppers = list(_stoppers.values())
        _stoppers.clear()
    for stop in stoppers:
        try:
            stop()
        except Exception as exc:  # keep stopping the others
            print(f"kairos: stopping a local Kafka failed: {exc}", file=sys.stderr)


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous = signal.getsignal(sig)
        if previous not in (signal.SIG_DFL, None):
            continue  # someone else owns it; atexit still covers a clean exit

        def handler(signum: int, frame: FrameType | None) -> None:
            # Clean up, then die of the same signal: raising SystemExit instead could be
            # caught (pytest reports it as a failed test and carries on).
            stop_all()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(sig, handler)
