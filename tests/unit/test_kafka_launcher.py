"""The Kafka launcher's pure parts: configuration, install errors, state file (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.kafka import KafkaInstallError, install, state
from app.kafka.config import NodeSpec, new_cluster_id, server_properties


def _nodes(n: int) -> list[NodeSpec]:
    return [NodeSpec(i + 1, 9000 + 2 * i, 9001 + 2 * i, Path(f"/x/node-{i + 1}")) for i in range(n)]


def test_single_node_is_broker_and_controller_with_rf1_internal_topics():
    (node,) = _nodes(1)
    props = server_properties(node, [node])
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9001"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9000,CONTROLLER://127.0.0.1:9001"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"


def test_three_nodes_share_one_quorum_and_replicate_internal_topics():
    nodes = _nodes(3)
    voters = {server_properties(n, nodes)["controller.quorum.voters"] for n in nodes}
    assert voters == {"1@127.0.0.1:9001,2@127.0.0.1:9003,3@127.0.0.1:9005"}
    props = server_properties(nodes[2], nodes)
    assert props["node.id"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"
    assert props["transaction.state.log.replication.factor"] == "3"
    assert props["transaction.state.log.min.isr"] == "2"


def test_cluster_id_is_22_chars_of_url_safe_base64():
    ids = {new_cluster_id() for _ in range(50)}
    assert len(ids) == 50
    for cid in ids:
        assert len(cid) == 22 and not cid.startswith("-")
        assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_missing_java_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaInstallError, match=r"java not found on PATH.*JDK"):
        install.java_executable()


def test_missing_mvn_without_cache_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_KAFKA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(KafkaInstallError, match=r"mvn not found.*install Maven"):
        install.ensure_kafka("4.1.1")


def test_complete_cache_is_used_without_maven(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_KAFKA_HOME", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no mvn reachable
    libs = tmp_path / "9.9.9" / "libs"
    libs.mkdir(parents=True)
    (libs / ".complete").write_text("kafka_2.13-9.9.9.jar\n")
    assert install.ensure_kafka("9.9.9") == libs


def test_state_file_round_trip_and_dead_pids(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_STATE_DIR", str(tmp_path))
    assert state.load() is None
    record = state.RecordedCluster(
        bootstrap="127.0.0.1:1",
        pids=[2**22 + 12345],  # above pid_max's default: never a live process
        directory=str(tmp_path / "c"),
        brokers=1,
        version="4.1.1",
        started_at=0.0,
    )
    state.save(record)
    assert state.load() == record
    assert record.live_pids() == []
    assert state.stop_recorded(record) == []
    assert state.load() is None


def test_corrupt_state_file_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("KAIROS_STATE_DIR", str(tmp_path))
    state.state_file().write_text("{not json")
    with pytest.raises(ValueError, match=r"kafka\.json is not a Kairos state file"):
        state.load()
