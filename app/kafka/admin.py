"""Create topics and wait until every partition has a leader (aiokafka admin client)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


async def ensure_topics(
    bootstrap: str,
    names: list[str],
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    config: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create ``names`` (existing topics are kept as they are) and wait for their leaders."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        new = [
            NewTopic(n, partitions, replication_factor, topic_configs=config or {}) for n in names
        ]
        result = await admin.create_topics(new)
        for topic, code, *rest in result.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"creating topic {topic!r} failed: Kafka error {code} {rest}")
        deadline = time.monotonic() + timeout
        while True:
            descs = await admin.describe_topics(names)
            if all(
                d.get("error_code", 0) == 0
                and d.get("partitions")
                and all(p["leader"] >= 0 for p in d["partitions"])
                for d in descs
            ):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {names} have no leader for every partition: {descs}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
