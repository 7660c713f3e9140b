"""Fixtures shared by every test. Broker fixtures start Kafka lazily: unit tests never do.

- ``kafka_bootstrap`` (session): one local broker, or ``$KAFKA_BOOTSTRAP_SERVERS`` when set.
- ``kafka_cluster3`` (module): a started 3-node :class:`app.kafka.KafkaCluster`.
- ``topic_factory``: ``await topic_factory(partitions=.., replication_factor=.., bootstrap=..)``.
- ``faust_worker``: ``faust_worker("pkg.module", env={...})`` -> :class:`FaustWorker`.

When a broker cannot start the fixture fails with the reason and the broker log; it never
skips.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.fixtures.topics import create_topic
from tests.fixtures.workers import FaustWorker


def _start_cluster(brokers: int):  # -> KafkaCluster (import kept lazy for unit-only runs)
    from app.kafka import KafkaCluster, KafkaLauncherError

    cluster = KafkaCluster(brokers=brokers)
    try:
        cluster.start()
    except KafkaLauncherError as exc:
        pytest.fail(f"the local Kafka ({brokers} broker(s)) did not start: {exc}", pytrace=False)
    return cluster


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap servers of a single broker shared by the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    cluster = _start_cluster(1)
    try:
        yield cluster.bootstrap
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def kafka_cluster3() -> Iterator[object]:
    """A started 3-node cluster (every node broker + controller), stopped after the module."""
    cluster = _start_cluster(3)
    try:
        yield cluster
    finally:
        cluster.stop()


TopicFactory = Callable[..., Awaitable[str]]


@pytest.fixture
def topic_factory(request: pytest.FixtureRequest) -> TopicFactory:
    """Create uniquely named topics; defaults to the ``kafka_bootstrap`` broker."""

    async def factory(
        name: str | None = None,
        *,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
        bootstrap: str | None = None,
        prefix: str = "t",
    ) -> str:
        servers = bootstrap or request.getfixturevalue("kafka_bootstrap")
        return await create_topic(
            servers,
            name,
            partitions=partitions,
            replication_factor=replication_factor,
            config=config,
            prefix=prefix,
        )

    return factory


@pytest.fixture
def faust_worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., FaustWorker]]:
    """Factory of subprocess Faust workers; every worker is stopped when the test ends."""
    workers: list[FaustWorker] = []

    def make(
        app: str,
        *,
        env: Mapping[str, str] | None = None,
        bootstrap: str | None = None,
        name: str | None = None,
    ) -> FaustWorker:
        servers = bootstrap or request.getfixturevalue("kafka_bootstrap")
        label = name or f"worker-{len(workers) + 1}"
        worker = FaustWorker(app, servers, env=env, log_path=tmp_path / f"{label}.log")
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()
