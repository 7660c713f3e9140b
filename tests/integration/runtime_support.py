"""Helpers for the runtime's broker tests: a ``kairos worker`` subprocess, topic reads, rules.

Every wait has a deadline and fails with the worker's log tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[2]
RUNNING = '"msg":"worker running"'


#: A three-stage A -> B -> C rule per user: the recovery, flush and scale tests share it.
ABC_RULE = """
name: abc
version: 1
source: {source}
key: user
id: id
time: ts
within: 1h
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
  - name: c
    after: relaxed
    where: event.type == 'C'
emit: {{kind: offer, topic: {out}, data: {{a: "stages.a[0].id", c: "stages.c[0].id"}}}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class KairosWorker:
    """``python -m app.cli worker`` in its own process group, logging JSON lines to a file."""

    def __init__(self, bootstrap: str, env: Mapping[str, str], log_path: Path) -> None:
        self.bootstrap = bootstrap
        self.env = dict(env)
        self.log_path = log_path
        self.port = int(self.env.setdefault("KAIROS_WEB_PORT", str(free_port())))
        self.proc: subprocess.Popen[bytes] | None = None
        self._offset = 0

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 90.0) -> KairosWorker:
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAIROS_LOG_FORMAT": "json",
            "KAIROS_TICK_INTERVAL": "0.2",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_for_log(RUNNING, timeout)
        self.wait_until(lambda: self.http_json("/readyz") is not None, timeout, "ready")
        return self

    def since_start(self) -> str:
        return self.log[self._offset :]

    def wait_for_log(self, needle: str, timeout: float) -> None:
        self.wait_until(lambda: needle in self.since_start(), timeout, repr(needle))

    def wait_until(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"kairos worker exited ({self.proc.returncode}) waiting for {what}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout:.0f}s waiting for {what}:\n{self.tail()}"
                )
            time.sleep(0.1)

    def http_json(self, path: str) -> Any:
        """GET a JSON document from the worker's web view, None when it does not answer 200."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return orjson.loads(r.read()) if r.status == 200 else None
        except OSError:
            return None

    def stop(self, timeout: float = 20.0) -> None:
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:])


async def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` every 0.1 s until it returns something true (returned); fails after
    ``timeout`` seconds naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def produce_json(
    bootstrap: str, topic: str, events: Iterable[Any], *, key: str | None = None
) -> None:
    """Send events (dicts → JSON; bytes as they are) in order, keyed by ``event[key]``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = []
        for e in events:
            value = e if isinstance(e, bytes) else orjson.dumps(e)
            k = str(e[key]).encode() if key and isinstance(e, dict) and key in e else None
            futures.append(await producer.send(topic, value, key=k))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def publish_rule(bootstrap: str, rules_topic: str, name: str, text: str | None) -> None:
    """Write a rules-topic record as ``kairos rules apply`` does (None: delete)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            rules_topic, None if text is None else text.encode(), key=name.encode()
        )
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Any]], bool],
    *,
    timeout: float = 30.0,
    settle: float = 1.0,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """Records of ``topic`` from the beginning until ``done(records)``, then ``settle`` more seconds.

    Fails with what was read when the deadline passes first.
    """
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
        metadata_max_age_ms=500,
    )
    await consumer.start()
    got: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        settle_until: float | None = None
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for tp in sorted(batch, key=lambda t: t.partition):
                got.extend(batch[tp])
            now = time.monotonic()
            if settle_until is None and done(got):
                settle_until = now + settle
            if settle_until is not None and now >= settle_until:
                return got
            if now > deadline:
                shown = [(r.key, r.value[:200] if r.value else None) for r in got[-20:]]
                raise AssertionError(
                    f"{len(got)} records in {topic!r} after {timeout:.0f}s, condition not met; "
                    f"last: {shown}"
                )
    finally:
        await consumer.stop()


def cloudevents(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]
