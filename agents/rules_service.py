"""Rules on Kafka: publish rule files, follow the compacted rules topic, report verdicts.

Record format of the rules topic (key = rule name): the value is one rule's document as text
(``Rule.text``: what ``kairos rules apply`` sends), header ``filename`` names its file; a
tombstone (value None) deletes the rule. Every worker reads the whole topic from the start
with its own group-less consumer, then follows it: a change reaches every worker.

Each verdict (applied / rejected with the validation errors) is produced to the status topic,
key = rule name, value = JSON with the worker's id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.config import RuntimeConfig
from agents.rulebook import RuleBook, RuleStatus
from cep.rules import load_rules, load_rules_text

__all__ = ["RulesService", "publish_rules"]

log = logging.getLogger("kairos.rules")


async def publish_rules(
    settings: RuntimeConfig, paths: Sequence[str | Path], producer: AIOKafkaProducer | None = None
) -> list[str]:
    """Validate every rule file under ``paths`` and publish each rule; nothing when one is invalid.

    Raises :class:`cep.rules.RuleValidationError` listing every problem.
    """
    rules = load_rules(list(paths))
    own = producer is None
    if producer is None:
        producer = AIOKafkaProducer(acks="all", **settings.kafka_client_kwargs())
        await producer.start()
    try:
        for rule in rules:
            await producer.send_and_wait(
                settings.rules_topic,
                rule.text.encode(),
                key=rule.name.encode(),
                headers=[("filename", str(rule.file).encode())],
            )
    finally:
        if own:
            await producer.stop()
    return [rule.name for rule in rules]


class RulesService:
    """Follows the rules topic into a :class:`RuleBook` and reports each verdict."""

    def __init__(self, settings: RuntimeConfig, book: RuleBook, worker_id: str) -> None:
        self.settings = settings
        self.book = book
        self.worker_id = worker_id
        self.loaded = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = False

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(acks="all", **self.settings.kafka_client_kwargs())
        await self._producer.start()
        if self.settings.rules_dir:
            names = await publish_rules(
                self.settings, [self.settings.rules_dir], producer=self._producer
            )
            log.info(
                "rule files published",
                extra={"rules_dir": self.settings.rules_dir, "rules": names},
            )

    async def stop(self) -> None:
        self._stopping = True
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    async def apply_text(self, text: str, filename: str) -> list[str]:
        """Validate ``text`` and publish its rules (the web view's ``POST /api/rules``)."""
        rules = load_rules_text(text, filename)
        assert self._producer is not None
        for rule in rules:
            await self._producer.send_and_wait(
                self.settings.rules_topic,
                rule.text.encode(),
                key=rule.name.encode(),
                headers=[("filename", filename.encode())],
            )
        return [rule.name for rule in rules]

    async def delete(self, name: str) -> bool:
        """Publish a tombstone for ``name``; False when no worker runs such a rule here."""
        if name not in self.book.rules:
            return False
        assert self._producer is not None
        await self._producer.send_and_wait(self.settings.rules_topic, None, key=name.encode())
        return True

    async def run(self) -> None:
        """Read the rules topic from the beginning, then follow it; sets :attr:`loaded`."""
        consumer = self._consumer = AIOKafkaConsumer(
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5000,
            **self.settings.kafka_client_kwargs(),
        )
        await consumer.start()
        topic = self.settings.rules_topic
        parts = await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        if not pending:
            self._mark_loaded()
        while not self._stopping:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    await self._on_record(record.key, record.value, record.headers)
            if pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= end[tp]:
                        pending.discard(tp)
                if not pending:
                    self._mark_loaded()

    def _mark_loaded(self) -> None:
        log.info(
            "rules loaded",
            extra={"rules": {n: r.version for n, r in sorted(self.book.rules.items())}},
        )
        self.loaded.set()

    async def _on_record(self, key: bytes | None, value: bytes | None, headers: Sequence) -> None:
        if key is None:
            log.error("rules topic record without a key ignored; key must be the rule name")
            return
        name = key.decode(errors="replace")
        if value is None:
            if self.book.delete(name):
                await self._report(
                    {"name": name, "status": "deleted", "at": int(time.time() * 1000)}
                )
            return
        filename = next((v.decode() for k, v in headers or () if k == "filename"), "")
        current = self.book.rules.get(name)
        if current is not None and current.text.encode() == value:
            return  # the same document again (a worker re-publishing its rules directory)
        status: RuleStatus = self.book.apply(name, value.decode(errors="replace"), filename)
        await self._report(
            status.to_dict() if status.ok else {**status.to_dict(), "status": "rejected"}
        )

    async def _report(self, verdict: dict) -> None:
        if self._producer is None:
            return
        verdict = {**verdict, "worker": self.worker_id}
        try:
            await self._producer.send_and_wait(
                self.settings.rules_status_topic,
                orjson.dumps(verdict),
                key=str(verdict["name"]).encode(),
            )
        except Exception:
            log.exception("cannot publish the rule verdict", extra={"verdict": verdict})


async def _partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float = 30.0) -> set[int]:
    deadline = time.monotonic() + timeout
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return parts
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"rules topic {topic!r} does not exist after {timeout:.0f}s; "
                "check KAIROS_RULES_TOPIC and that the worker may create topics"
            )
        await consumer.topics()
        await asyncio.sleep(0.2)
