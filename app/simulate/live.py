"""Pieces of a live run on Kafka: topics, a worker subprocess, output readers, the worker's API.

Used by ``kairos demo`` and its integration test. Every wait here is on a condition with a
deadline; every process started here is stopped by :meth:`WorkerProcess.stop` (SIGTERM to its
process group, SIGKILL after a timeout) and dies with its parent if that is killed.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.simulate.truth import detection_fields

READY_LOG_LINE = b"worker running"
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # in the child, between fork and exec
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class LiveRunError(RuntimeError):
    """A live run could not proceed; the message says why and what to look at."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_topics(
    bootstrap: str,
    partitions: Mapping[str, int],
    configs: Mapping[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names that already existed."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                num_partitions=n,
                replication_factor=1,
                topic_configs=(configs or {}).get(name, {}),
            )
            for name, n in partitions.items()
            if name not in existing
        ]
        if new:
            await admin.create_topics(new)
        return sorted(set(partitions) & existing)
    finally:
        await admin.close()


async def existing_topics(bootstrap: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def group_caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """True when ``group`` has committed every partition of ``topics`` up to its end offset."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        parts = [
            TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())
        ]
        if not parts:
            await consumer.topics()  # refresh metadata once
            parts = [
                TopicPartition(t, p)
                for t in topics
                for p in (consumer.partitions_for_topic(t) or ())
            ]
        ends = await consumer.end_offsets(parts)
        committed = await admin.list_consumer_group_offsets(group, partitions=parts)
        for tp in parts:
            meta = committed.get(tp)
            if ends[tp] > 0 and (meta is None or meta.offset < ends[tp]):
                return False
        return True
    finally:
        await consumer.stop()
        await admin.close()


@dataclass
class WorkerProcess:
    """``kairos worker`` as a subprocess in its own session, logging to a file."""

    env: dict[str, str]
    log_path: Path
    proc: Any = None

    def start(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        guard = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=guard,
            )
        from app.kafka import reaper

        reaper.register(id(self), self.stop)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else int(self.proc.pid)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        from app.kafka.process import tail

        return tail(self.log_path, lines)

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise LiveRunError(
                    f"the worker exited with code {self.proc.returncode}; its log "
                    f"({self.log_path}) ends with:\n{self.log_tail()}"
                )
            if READY_LOG_LINE in self.log_path.read_bytes():
                return
            await asyncio.sleep(0.2)
        raise LiveRunError(
            f"the worker was not running after {timeout:.0f}s; its log ({self.log_path}) "
            f"ends with:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        from app.kafka import reaper
        from app.kafka.process import terminate_group

        if self.proc is not None and self.proc.poll() is None:
            terminate_group(self.proc.pid, timeout, self.proc)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        reaper.unregister(id(self))


class WorkerAPI:
    """The few HTTP calls the demo makes to its worker."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self._session: Any = None

    async def __aenter__(self) -> WorkerAPI:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()

    async def get(self, path: str) -> Any:
        import aiohttp

        try:
            async with self._session.get(self.base + path) as resp:
                if resp.status != 200:
                    return None
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def rules(self) -> dict[str, dict[str, Any]]:
        doc = await self.get("/api/rules")
        if not isinstance(doc, dict):
            return {}
        return {r["name"]: r for r in doc.get("rules", []) if isinstance(r, dict)}

    async def totals(self) -> dict[str, int]:
        doc = await self.get("/api/stats?seconds=1")
        return dict(doc.get("totals", {})) if isinstance(doc, dict) else {}


@dataclass
class OutputReader:
    """Reads the offers/alerts topics (CloudEvents) and the DLQ from the beginning."""

    bootstrap: str
    output_topics: list[str]
    dlq_topic: str
    cloudevents: list[dict[str, Any]] = field(default_factory=list)
    matches: Counter[str] = field(default_factory=Counter)
    timeouts: Counter[str] = field(default_factory=Counter)
    dead: dict[str, list[tuple[bytes, str]]] = field(default_factory=dict)
    undecodable: int = 0
    _consumer: Any = None
    _task: asyncio.Task[None] | None = None

    @property
    def dlq_count(self) -> int:
        return sum(len(v) for v in self.dead.values())

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(
            *self.output_topics,
            self.dlq_topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for rec in records:
                    if tp.topic == self.dlq_topic:
                        headers = dict(rec.headers or ())
                        source = headers.get("kairos.source.topic", b"").decode()
                        reason = headers.get("kairos.dlq.reason", b"").decode()
                        self.dead.setdefault(source, []).append((rec.value, reason))
                        continue
                    try:
                        ce = orjson.loads(rec.value)
                        rule, _key, kind = detection_fields(ce)
                    except (orjson.JSONDecodeError, TypeError, KeyError):
                        self.undecodable += 1
                        continue
                    self.cloudevents.append(ce)
                    if kind == "match":
                        self.matches[rule] += 1
                    elif kind == "timeout":
                        self.timeouts[rule] += 1

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.stop()
