"""Create the topics Kairos writes to (rules, status, DLQ, outputs) when they are missing."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agents.config import RuntimeConfig

__all__ = ["TopicSpec", "ensure_topics"]

log = logging.getLogger("kairos.admin")

TopicSpec = tuple[str, int, dict[str, str]]  # name, partitions, config


async def ensure_topics(settings: RuntimeConfig, specs: Iterable[TopicSpec]) -> list[str]:
    """Create every missing topic; return the names created."""
    wanted = {name: (parts, config) for name, parts, config in specs}
    if not wanted:
        return []
    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name,
                num_partitions=parts,
                replication_factor=settings.replication_factor,
                topic_configs=config,
            )
            for name, (parts, config) in sorted(wanted.items())
            if name not in existing
        ]
        created: list[str] = []
        if new:
            result = await admin.create_topics(new)
            for name, code, *rest in result.topic_errors:
                if code == 0:
                    created.append(name)
                elif code != TopicAlreadyExistsError.errno:  # a concurrent worker won the race
                    raise RuntimeError(
                        f"cannot create topic {name!r}: Kafka error {code} {rest}; "
                        "check the broker log and KAIROS_REPLICATION_FACTOR"
                    )
        if created:
            log.info("topics created", extra={"topics": created})
        return created
    finally:
        await admin.close()
