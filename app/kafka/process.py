"""One broker JVM: spawn it in its own process group, stop it for sure.

Orphan guards: each JVM runs in its own session (``killpg`` reaches it and nothing else);
when started from the main thread of a process that wants it (fixtures, ``--foreground``),
the kernel kills the JVM if that process dies (``PR_SET_PDEATHSIG``); ``app.kafka.reaper``
stops live clusters on normal exit and on SIGTERM/SIGHUP.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def kill_with_parent() -> None:
    """``preexec_fn``: the kernel SIGKILLs the child when the forking thread exits (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def jvm_command(java: str, libs: Path, directory: Path, main: str, *args: str) -> list[str]:
    heap = os.environ.get("KAIROS_KAFKA_HEAP", "512m")
    extra = os.environ.get("KAIROS_KAFKA_JVM_OPTS", "").split()
    return [
        java,
        f"-Xmx{heap}",
        "-Xms64m",
        "-XX:+UseSerialGC",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
        *extra,
        "-cp",
        f"{libs}/*",
        main,
        *args,
    ]


def spawn(cmd: list[str], log_file: Path, *, die_with_parent: bool) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new session, appending stdout+stderr to ``log_file``."""
    guard: Callable[[], None] | None = None
    if die_with_parent and threading.current_thread() is threading.main_thread():
        guard = kill_with_parent
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=guard,
        )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def terminate_group(pid: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group of ``pid``; SIGKILL it if still alive after ``timeout`` s."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc is not None:
                if proc.poll() is not None:
                    return
            elif not pid_alive(pid):
                return
            time.sleep(0.05)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of ``path`` ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def signal_group(pid: int, sig: int) -> None:
    """Send ``sig`` to the process group of ``pid`` (no error if it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def kill_group(pid: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGKILL the process group of ``pid`` and wait until it is gone (max 10 s)."""
    signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if (proc.poll() is not None) if proc is not None else not pid_alive(pid):
            return
        time.sleep(0.05)
