"""The local Kafka launcher: a 3-node cluster carries an RF=3 topic, survives losing a node,
and leaves no JVM behind; the CLI starts, reports and stops a background broker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from app.kafka import KafkaCluster, KafkaLauncherError
from tests.fixtures.records import produce, read_records
from tests.fixtures.topics import create_topic

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]


def _jvms_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (read from /proc, no ``ps`` needed)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and "java" in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


async def _replicas(bootstrap: str, topic: str) -> list[tuple[list[int], list[int]]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (desc,) = await admin.describe_topics([topic])
        return [(sorted(p["replicas"]), sorted(p["isr"])) for p in desc["partitions"]]
    finally:
        await admin.close()


@pytest.mark.slow
async def test_three_brokers_replicate_survive_a_kill_and_leave_no_jvm(tmp_path):
    cluster = KafkaCluster(brokers=3, workdir=tmp_path)
    try:
        cluster.start()
    except KafkaLauncherError as exc:
        pytest.fail(f"3-node cluster did not start: {exc}", pytrace=False)
    directory = str(cluster.directory)
    try:
        bootstrap = cluster.bootstrap
        assert len(bootstrap.split(",")) == 3
        assert len(_jvms_mentioning(directory)) == 3

        topic = await create_topic(bootstrap, partitions=2, replication_factor=3, prefix="rf3")
        assert await _replicas(bootstrap, topic) == [([1, 2, 3], [1, 2, 3])] * 2

        await produce(bootstrap, topic, [(b"k", b"before-%d" % i) for i in range(5)])
        cluster.kill_broker(0)
        assert not cluster.is_running(0)
        await produce(bootstrap, topic, [(b"k", b"after-%d" % i) for i in range(5)])
        survivors = ",".join(n.address for n in cluster.nodes[1:])
        values = [v for _, v in await read_records(survivors, topic, 10)]
        assert values == [b"before-%d" % i for i in range(5)] + [b"after-%d" % i for i in range(5)]

        cluster.restart_broker(0)
        assert cluster.is_running(0)
    finally:
        cluster.stop()
    assert _jvms_mentioning(directory) == []
    assert not Path(directory).exists()


def test_cli_starts_reports_and_stops_a_background_broker(tmp_path):
    env = {**os.environ, "KAIROS_STATE_DIR": str(tmp_path / "state")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)

    def kairos(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.cli", "kafka", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    started = kairos("start", "--quiet")
    try:
        assert started.returncode == 0, started.stderr
        line = started.stdout.strip()
        assert line.startswith("export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:")
        bootstrap = line.split("=", 1)[1]

        status = kairos("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "brokers [1] registered" in status.stdout
        assert bootstrap in status.stdout
        assert len(_jvms_mentioning(str(tmp_path / "state"))) == 1

        again = kairos("start")
        assert again.returncode == 1
        assert "already running" in again.stderr
    finally:
        stopped = kairos("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert _jvms_mentioning(str(tmp_path / "state")) == []
    assert kairos("status").returncode == 1


async def test_broker_serves_aiokafka_transactions(kafka_bootstrap, topic_factory):
    """Kafka 4.x + aiokafka 0.14: committed records are visible, aborted ones are not."""
    topic = await topic_factory(prefix="tx")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=topic)
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-2")
    finally:
        await producer.stop()
    committed = await read_records(kafka_bootstrap, topic, 2, isolation_level="read_committed")
    assert [v for _, v in committed] == [b"committed-1", b"committed-2"]
    everything = await read_records(kafka_bootstrap, topic, 3)
    assert [v for _, v in everything] == [b"committed-1", b"aborted", b"committed-2"]
