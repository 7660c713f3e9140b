"""The ingest commits only the source partitions it still owns after a rebalance."""

from __future__ import annotations

from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from agents.ingest_service import IngestService
from agents.rulebook import RuleBook
from app.settings import Settings

A, B = TopicPartition("src", 0), TopicPartition("src", 1)


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition], error: Exception | None = None) -> None:
        self.assigned = assigned
        self.error = error
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.error is not None:
            raise self.error
        self.commits.append(dict(offsets))


def service(consumer: Any) -> IngestService:
    svc = IngestService(Settings.from_env({}), RuleBook(), "keyed")
    svc.consumer = consumer
    return svc


async def test_a_revoked_partition_is_not_committed() -> None:
    consumer = FakeConsumer({A})  # B went to another worker in a rebalance
    svc = service(consumer)
    await svc._commit({A: 10, B: 7})
    assert consumer.commits == [{A: 10}]
    assert svc._positions == {A: 10}


async def test_a_commit_refused_after_a_rebalance_does_not_stop_the_ingest() -> None:
    consumer = FakeConsumer({A, B}, CommitFailedError("the group has already rebalanced"))
    svc = service(consumer)
    await svc._commit(
        {A: 10, B: 7}
    )  # logged, not raised: the next owner re-reads from the last commit
    assert svc._positions == {}
