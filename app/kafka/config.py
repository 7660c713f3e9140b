"""Broker configuration for a small local KRaft cluster.

Every node is broker *and* controller; the controller quorum is all nodes (static voters),
so one node is the smallest correct cluster and three nodes survive the loss of one.
"""

from __future__ import annotations

import base64
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class NodeSpec:
    """One node of the cluster: its id, ports and directory."""

    node_id: int
    port: int
    controller_port: int
    directory: Path

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now (a race is still possible)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def new_cluster_id() -> str:
    """A cluster id in Kafka's format (URL-safe base64 of 16 bytes, never starting with '-')."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(node: NodeSpec, nodes: list[NodeSpec]) -> dict[str, str]:
    """``server.properties`` of ``node`` in a cluster of ``nodes`` (small-machine settings)."""
    n = len(nodes)
    rf = min(n, 3)
    voters = ",".join(f"{m.node_id}@{HOST}:{m.controller_port}" for m in nodes)
    return {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(node.data_dir),
        # Internal topics replicated as far as the cluster allows.
        "offsets.topic.replication.factor": str(rf),
        "offsets.topic.num.partitions": "10",
        "transaction.state.log.replication.factor": str(rf),
        "transaction.state.log.min.isr": str(max(1, rf - 1)),
        "transaction.state.log.num.partitions": "10",
        "share.coordinator.state.topic.replication.factor": str(rf),
        "share.coordinator.state.topic.min.isr": str(max(1, rf - 1)),
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "delete.topic.enable": "true",
        # Fast rebalances and small threads pools: this is a laptop/CI broker.
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "num.recovery.threads.per.data.dir": "1",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
        "log.cleaner.dedupe.buffer.size": str(8 * 1024 * 1024),
        "log.cleaner.threads": "1",
        "controlled.shutdown.enable": "true",
    }


LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def write_node_files(node: NodeSpec, nodes: list[NodeSpec]) -> None:
    node.directory.mkdir(parents=True, exist_ok=True)
    props = server_properties(node, nodes)
    node.config_file.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    (node.directory / "log4j2.properties").write_text(LOG4J2)
