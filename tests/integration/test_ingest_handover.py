"""Before the group moves a source partition, the ingest commits everything Kafka has
acknowledged of it (Kafka's commit-on-revoke), against the real broker: the next owner starts
where this worker stopped, not up to a commit interval earlier."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from agents import ingest_service
from agents.ingest_service import IngestService
from agents.rulebook import RuleBook
from app.settings import Settings
from tests.fixtures.topics import create_topic, unique_name
from tests.integration.runtime_support import produce_json, until
from tests.unit.runtime.test_ingest import RULE

pytestmark = pytest.mark.kafka


async def test_a_rebalance_commits_what_the_ingest_acknowledged(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the first acknowledged poll is committed by time; the rest waits for a reason.
    monkeypatch.setattr(ingest_service, "COMMIT_INTERVAL", 3600.0)
    app_id = unique_name("handover")
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "KAIROS_APP_ID": app_id,
            "KAIROS_PARTITIONS": "2",
            "KAIROS_SESSION_TIMEOUT": "10",
            "KAIROS_HEARTBEAT_INTERVAL": "0.5",
        }
    )
    src = await create_topic(kafka_bootstrap, partitions=1, prefix="handover-src")
    keyed = await create_topic(kafka_bootstrap, name=f"{app_id}-keyed", partitions=2)
    tp = TopicPartition(src, 0)
    events = [{"id": f"e{i}", "user": f"u{i}", "type": "A", "ts": i} for i in range(10)]
    book = RuleBook()
    assert book.apply("a-then-b", RULE.replace("source: events", f"source: {src}")).ok
    service = IngestService(settings, book, keyed)
    await service.start()
    running = asyncio.create_task(service.run())
    joiner = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{app_id}-ingest",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        heartbeat_interval_ms=500,
    )
    try:
        await produce_json(kafka_bootstrap, src, events[:5])
        await until(lambda: service._positions.get(tp), "the first commit")
        await produce_json(kafka_bootstrap, src, events[5:])
        await until(lambda: service._acked.get(tp) == 10, "every record acknowledged")
        await joiner.start()
        assert await joiner.committed(tp) < 10  # the interval holds the later polls back

        joiner.subscribe([src])  # a second member: the group takes the partition back first
        deadline = time.monotonic() + 30
        while (committed := await joiner.committed(tp)) != 10:
            assert not running.done(), running.exception()
            assert time.monotonic() < deadline, f"committed {committed}, not 10, after 30 s"
            await asyncio.sleep(0.1)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await joiner.stop()
        await service.stop()
