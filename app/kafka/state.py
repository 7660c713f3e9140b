"""The state file of a background local cluster, so ``kairos kafka status|stop`` find it.

``$KAIROS_STATE_DIR/kafka.json`` (default ``~/.cache/kairos/run/kafka.json``) holds the
bootstrap string, the JVM pids, the cluster directory and the Kafka version.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app.kafka.process import pid_alive, signal_group, terminate_group


def state_dir() -> Path:
    env = os.environ.get("KAIROS_STATE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kairos" / "run"


def state_file() -> Path:
    return state_dir() / "kafka.json"


@dataclass
class RecordedCluster:
    bootstrap: str
    pids: list[int]
    directory: str
    brokers: int
    version: str
    started_at: float
    foreground: bool = False

    def live_pids(self) -> list[int]:
        """Recorded pids still running *our* JVM (guards against pid reuse)."""
        return [p for p in self.pids if pid_alive(p) and _runs_in(p, self.directory)]


def _runs_in(pid: int, directory: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return directory in cmdline


def save(record: RecordedCluster) -> Path:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
    tmp.replace(path)
    return path


def load() -> RecordedCluster | None:
    try:
        return RecordedCluster(**json.loads(state_file().read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{state_file()} is not a Kairos state file ({exc}); delete it") from exc


def clear() -> None:
    state_file().unlink(missing_ok=True)


def stop_recorded(record: RecordedCluster, timeout: float = 15.0) -> list[int]:
    """Stop the recorded JVMs (SIGTERM, then SIGKILL), remove the directory and the state.

    Returns the pids that were still running.
    """
    live = record.live_pids()
    for pid in live:
        signal_group(pid, signal.SIGTERM)  # all at once, then wait for each
    deadline = time.monotonic() + timeout
    for pid in live:
        terminate_group(pid, max(0.0, deadline - time.monotonic()))
    shutil.rmtree(record.directory, ignore_errors=True)
    clear()
    return live
