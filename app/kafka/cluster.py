"""``KafkaCluster``: start 1..N local KRaft brokers on 127.0.0.1 and stop them for sure.

with KafkaCluster(brokers=3) as cluster:      # or cluster.start() / cluster.stop()
    bootstrap = cluster.bootstrap             # "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3"
    cluster.kill_broker(0)                    # SIGKILL node 1 (index 0)
    cluster.restart_broker(0)                 # same ports and data, waits until registered
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from app.kafka import reaper
from app.kafka.config import NodeSpec, free_ports, new_cluster_id, write_node_files
from app.kafka.errors import KafkaLauncherError, KafkaStartError
from app.kafka.install import ensure_kafka, java_executable
from app.kafka.process import jvm_command, kill_group, signal_group, spawn, tail, terminate_group

BROKER_MAIN = "kafka.Kafka"
STORAGE_MAIN = "kafka.tools.StorageTool"
_READY_LINE = b"Kafka Server started"
_PORT_IN_USE = "Address already in use"


class KafkaCluster:
    """A throw-away local Apache Kafka cluster (every node is broker + controller).

    ``brokers``: number of nodes (1 for development, 3 to test replication and failover).
    ``workdir``: parent of the cluster directory (default: the system temp dir); the
    cluster directory is removed by :meth:`stop` unless ``keep_dir``.
    ``die_with_parent``: the kernel kills the JVMs if this Python process dies (leave it on
    except for a detached ``kairos kafka start``).
    """

    def __init__(
        self,
        brokers: int = 1,
        *,
        workdir: Path | str | None = None,
        startup_timeout: float = 90.0,
        die_with_parent: bool = True,
        keep_dir: bool = False,
    ) -> None:
        if brokers < 1:
            raise ValueError(f"brokers must be >= 1, got {brokers}")
        self.size = brokers
        self.startup_timeout = startup_timeout
        self.die_with_parent = die_with_parent
        self.keep_dir = keep_dir
        self._workdir = Path(workdir) if workdir else None
        self.directory: Path | None = None
        self.nodes: list[NodeSpec] = []
        self.cluster_id = ""
        self._procs: list[subprocess.Popen[bytes] | None] = []
        self._libs: Path | None = None
        self._java = ""

    # -- public API ----------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` of every node, comma-separated (valid after :meth:`start`)."""
        if not self.nodes:
            raise KafkaLauncherError("the cluster is not started: call start() first")
        return ",".join(n.address for n in self.nodes)

    def start(self) -> str:
        """Install if needed, format storage, start every node, wait until all are registered.

        Returns the bootstrap string. Raises :class:`KafkaLauncherError` with the reason and
        the tail of the broker log; nothing is left running on failure.
        """
        if self._procs:
            raise KafkaLauncherError("the cluster is already started")
        self._java = java_executable()
        self._libs = ensure_kafka()
        reaper.register(id(self), self.stop)
        attempts = 3
        for attempt in range(1, attempts + 1):
            try:
                self._start_once()
                return self.bootstrap
            except KafkaStartError as exc:
                retry = _PORT_IN_USE in exc.log_tail and attempt < attempts
                # Keep the logs of a real failure (its path is in the message); no JVM stays.
                self._teardown(remove_dir=retry)
                if retry:
                    continue  # another process grabbed a port between probe and bind
                reaper.unregister(id(self))
                raise
            except BaseException:
                self.stop()
                raise
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every node (all at once), SIGKILL after ``timeout`` s; remove the directory."""
        reaper.unregister(id(self))
        self._teardown(remove_dir=not self.keep_dir, timeout=timeout)

    def kill_broker(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based; its node id is ``index + 1``)."""
        proc = self._proc(index)
        kill_group(proc.pid, proc)
        self._procs[index] = None

    def stop_broker(self, index: int, timeout: float = 20.0) -> None:
        """Stop node ``index`` gracefully (controlled shutdown), SIGKILL after ``timeout`` s."""
        proc = self._proc(index)
        terminate_group(proc.pid, timeout, proc)
        self._procs[index] = None

    def restart_broker(self, index: int) -> None:
        """Start a stopped/killed node again on its ports and data; wait until registered."""
        if self._procs[index] is not None and self._procs[index].poll() is None:
            raise KafkaLauncherError(f"broker {index} is running; kill_broker({index}) first")
        node = self.nodes[index]
        offset = node.log_file.stat().st_size if node.log_file.exists() else 0
        self._procs[index] = self._spawn_broker(node)
        deadline = time.monotonic() + self.startup_timeout
        self._wait_started(index, offset, deadline)
        self._wait_registered({node.node_id}, deadline)

    def is_running(self, index: int) -> bool:
        proc = self._procs[index] if index < len(self._procs) else None
        return proc is not None and proc.poll() is None

    @property
    def pids(self) -> list[int]:
        """Process ids of the running nodes."""
        return [p.pid for p in self._procs if p is not None and p.poll() is None]

    def log_tail(self, index: int = 0, lines: int = 40) -> str:
        return tail(self.nodes[index].log_file, lines)

    def detach(self) -> None:
        """Leave the brokers running after this process exits (``kairos kafka start``).

        The caller becomes responsible for stopping them (``app.kafka.state.stop_recorded``).
        """
        reaper.unregister(id(self))
        self._procs = []

    def __enter__(self) -> KafkaCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.bootstrap if self.nodes else "not started"
        return f"<KafkaCluster brokers={self.size} {state}>"

    # -- internals -----------------------------------------------------------------------

    def _start_once(self) -> None:
        base = self._workdir or Path(tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        self.directory = Path(tempfile.mkdtemp(prefix="kairos-kafka-", dir=base))
        ports = free_ports(2 * self.size)
        self.nodes = [
            NodeSpec(i + 1, ports[2 * i], ports[2 * i + 1], self.directory / f"node-{i + 1}")
            for i in range(self.size)
        ]
        self.cluster_id = new_cluster_id()
        for node in self.nodes:
            write_node_files(node, self.nodes)
        self._format()
        deadline = time.monotonic() + self.startup_timeout
        self._procs = [self._spawn_broker(node) for node in self.nodes]
        for i in range(self.size):
            self._wait_started(i, 0, deadline)
        self._wait_registered({n.node_id for n in self.nodes}, deadline)

    def _format(self) -> None:
        assert self._libs is not None
        procs = []
        for node in self.nodes:
            cmd = jvm_command(
                self._java,
                self._libs,
                node.directory,
                STORAGE_MAIN,
                "format",
                "-t",
                self.cluster_id,
                "-c",
                str(node.config_file),
            )
            cmd.insert(1, "-XX:TieredStopAtLevel=1")
            procs.append(
                (node, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            )
        for node, proc in procs:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                text = out.decode("utf-8", "replace").strip().splitlines()
                raise KafkaStartError(
                    f"formatting KRaft storage of node {node.node_id} in {node.data_dir} failed "
                    f"(exit {proc.returncode})",
                    "\n".join(text[-20:]),
                )

    def _spawn_broker(self, node: NodeSpec) -> subprocess.Popen[bytes]:
        assert self._libs is not None
        cmd = jvm_command(
            self._java, self._libs, node.directory, BROKER_MAIN, str(node.config_file)
        )
        return spawn(cmd, node.log_file, die_with_parent=self.die_with_parent)

    def _wait_started(self, index: int, offset: int, deadline: float) -> None:
        node, proc = self.nodes[index], self._proc(index)
        while True:
            if _log_contains(node.log_file, offset, _READY_LINE):
                return
            code = proc.poll()
            if code is not None:
                log = tail(node.log_file)
                reason = "port in use" if _PORT_IN_USE in log else f"exit code {code}"
                raise KafkaStartError(
                    f"Kafka broker {node.node_id} ({node.address}) exited during startup "
                    f"({reason}); full log: {node.log_file}",
                    log,
                )
            if time.monotonic() > deadline:
                raise KafkaStartError(
                    f"Kafka broker {node.node_id} ({node.address}) did not start within "
                    f"{self.startup_timeout:.0f}s (busy machine? raise startup_timeout); "
                    f"full log: {node.log_file}",
                    tail(node.log_file),
                )
            time.sleep(0.1)

    def _wait_registered(self, wanted: set[int], deadline: float) -> None:
        last_error = ""
        while True:
            try:
                seen = _probe(self.bootstrap)
                if wanted <= seen:
                    return
                last_error = f"registered brokers {sorted(seen)}, waiting for {sorted(wanted)}"
            except Exception as exc:  # not answering yet
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise KafkaStartError(
                    f"the cluster at {self.bootstrap} did not report brokers {sorted(wanted)} "
                    f"within {self.startup_timeout:.0f}s ({last_error})",
                    self.log_tail(0),
                )
            time.sleep(0.2)

    def _proc(self, index: int) -> subprocess.Popen[bytes]:
        if not 0 <= index < len(self._procs):
            raise IndexError(f"broker index {index} out of range 0..{self.size - 1}")
        proc = self._procs[index]
        if proc is None:
            raise KafkaLauncherError(f"broker {index} is not running")
        return proc

    def _teardown(self, *, remove_dir: bool, timeout: float = 10.0) -> None:
        live = [p for p in self._procs if p is not None and p.poll() is None]
        for proc in live:  # all at once: stopping nodes one by one can stall on quorum loss
            signal_group(proc.pid, signal.SIGTERM)
        for proc in live:
            terminate_group(proc.pid, timeout, proc)
        self._procs = []
        if remove_dir and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
            self.nodes = []


def _log_contains(path: Path, offset: int, needle: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return needle in f.read()
    except FileNotFoundError:
        return False


def _probe(bootstrap: str) -> set[int]:
    from app.kafka.probe import broker_ids

    return broker_ids(bootstrap, timeout=3.0)
