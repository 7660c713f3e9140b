"""Ingest: source records → validated, keyed event batches (or the dead-letter topic).

Pure routing, no Kafka: :class:`Ingest` decodes each record once, asks the rules which of them
see it (with their key, time and event id) and appends it to the batch of the keyed-topic
partition its key hashes to. A record no rule can use goes to the DLQ list with a reason.
:mod:`agents.ingest_service` runs this against Kafka.

Context records (topics named by a rule's ``context.source``) update the context of their key
on the key's partition; a context record without the key field is skipped, not dead-lettered.

DLQ policy: a record is dead-lettered when it is not UTF-8, not JSON, not a JSON object, or
when no rule can use it although some rule reads its topic (each rule reported a missing or
invalid key/time field). A record one rule can use and another cannot is routed to the first
only: rules reading a shared topic often need different fields.

Events a rule cannot use stay here. An event that matches none of a rule's stage guards
changes no state of the rule (``RuleRunner.relevance``); what is left to tell of it is whether
it is late. A processing-time rule has no late events, and an event-time one can only find an
event late that is more than ``max_out_of_orderness`` behind the max event time its source
partition had reached (the keyed partition's watermark for the rule is at most that max minus
the bound, once the event's source counts again). So such an event is routed to the rule only
when it is that far behind; otherwise it is only counted (:attr:`IngestResult.kept_back`) and
its time still moves the rule's max event time (the ticks carry it). The keyed topic carries
what can still matter: most of a firehose never leaves the ingest.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from agents.rulebook import RuleBook
from agents.wire import BatchBuilder, partitioner

__all__ = ["DeadLetter", "Ingest", "IngestResult"]


@dataclass
class DeadLetter:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str
    detail: str

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        return [
            *self.headers,
            ("kairos.dlq.reason", self.reason.encode()),
            ("kairos.dlq.detail", self.detail.encode()),
            ("kairos.source.topic", self.topic.encode()),
            ("kairos.source.partition", str(self.partition).encode()),
            ("kairos.source.offset", str(self.offset).encode()),
        ]


@dataclass
class IngestResult:
    batches: dict[int, BatchBuilder] = field(default_factory=dict)
    dead: list[DeadLetter] = field(default_factory=list)
    events: int = 0
    context: int = 0
    ignored: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    #: rule -> events of the rule's topics that it cannot use and that cannot be late for it:
    #: counted here, not sent to detect (see the module's docstring)
    kept_back: dict[str, int] = field(default_factory=dict)


class Ingest:
    """Routes one poll's records; keeps the per-rule max event time (the watermark source)."""

    def __init__(self, book: RuleBook, partitions: int) -> None:
        self.book = book
        self.partitions = partitions
        # rule -> source partition ("topic:partition") -> max event time routed so far
        self.max_ts: dict[str, dict[str, int]] = {}
        # source partition -> wall ms of the last poll that routed an event from it
        self.src_last: dict[str, int] = {}
        self._source_names: dict[tuple[str, int], str] = {}  # (topic, partition) -> "topic:p"

    def route_poll(
        self,
        records: list[tuple[str, int, int, bytes | None, bytes | None, Any]],
        now_ms: int | None = None,
    ) -> IngestResult:
        """Route ``(topic, partition, offset, key, value, headers)`` records of one poll."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        out = IngestResult()
        runner = self.book.runner
        max_ts = self.max_ts
        partition_of = partitioner(self.partitions)
        batches = out.batches
        context_topics = set(runner.context_topics())
        event_topics = set(runner.topics())
        route_report = runner.route_report
        relevance = runner.relevance
        bounds = runner.out_of_orderness
        kept_back = out.kept_back
        src_last = self.src_last
        names = self._source_names
        out.by_topic = dict(Counter([r[0] for r in records]))
        # the source ("topic:partition") of the records routed last: a poll's records come
        # in runs of one partition
        run: tuple[str, int] | None = None
        source = ""
        for topic, partition, offset, rkey, value, headers in records:
            reason = detail = ""
            event: Any = None
            if value is None:
                reason, detail = "empty-value", "record has no value (tombstone)"
            else:
                try:
                    event = orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    try:
                        value.decode("utf-8")
                    except UnicodeDecodeError as uexc:
                        reason, detail = "not-utf8", f"byte {uexc.start} is not UTF-8"
                    else:
                        reason, detail = "malformed-json", str(exc)
                else:
                    if not isinstance(event, dict):
                        reason = "not-an-object"
                        detail = f"JSON {type(event).__name__} where an object was expected"
            if not reason and topic in context_topics:
                context_source = f"{topic}:{partition}"
                for key in {key for _rule, key in runner.context_routes(topic, event)}:
                    p = partition_of[key]
                    builder = batches.get(p)
                    if builder is None:
                        builder = batches[p] = BatchBuilder()
                    builder.add_context(key, context_source, offset, event)
                out.context += 1
                if topic not in event_topics:
                    continue  # a pure context topic: records without the key are not errors
            if not reason:
                routes, problems = route_report(topic, event)
                if routes:
                    if run is None or partition != run[1] or topic != run[0]:
                        run = (topic, partition)
                        source = names.get(run)
                        if source is None:
                            source = names[run] = f"{topic}:{partition}"
                        src_last[source] = now
                    by_key: dict[str, list[list[Any]]] | None = None
                    first_key: str | None = None
                    first: list[list[Any]] = []
                    for name, key, ts, eid in routes:
                        relevant = relevance.get(name)
                        if ts is None:
                            if relevant is not None and not relevant(event):
                                kept_back[name] = kept_back.get(name, 0) + 1
                                continue
                            entry = [name, None, eid, None]
                        else:
                            per_src = max_ts.get(name)
                            if per_src is None:
                                per_src = max_ts[name] = {}
                            seen = per_src.get(source)
                            if seen is None or ts > seen:
                                per_src[source] = seen = ts
                            if (
                                relevant is not None
                                and ts >= seen - bounds[name]
                                and not relevant(event)
                            ):
                                kept_back[name] = kept_back.get(name, 0) + 1
                                continue
                            entry = [name, ts, eid, seen]
                        key = key if type(key) is str else str(key)
                        if first_key is None or key == first_key:
                            first_key = key
                            first.append(entry)
                        else:  # rules keyed differently: the event goes to each key
                            if by_key is None:
                                by_key = {first_key: first}
                            by_key.setdefault(key, []).append(entry)
                    if first_key is None:  # no rule can use it, and it cannot be late
                        out.events += 1
                        continue
                    for key, rule_routes in by_key.items() if by_key else ((first_key, first),):
                        p = partition_of[key]  # type: ignore[index]
                        builder = batches.get(p)
                        if builder is None:
                            builder = batches[p] = BatchBuilder()
                        builder.add_event(key, source, offset, now, rule_routes, value)  # type: ignore[arg-type]
                    out.events += 1
                    continue
                if not problems:
                    out.ignored += 1  # no active rule reads this topic any more
                    continue
                reason = _reason_code(problems[0][1])
                detail = "; ".join(why for _name, why in problems)
            out.dead.append(
                DeadLetter(
                    topic, partition, offset, rkey, value, list(headers or ()), reason, detail
                )
            )
        return out


def _reason_code(why: str) -> str:
    """A stable short code for the DLQ reason header, from the rules' problem text.

    ``cep.rules`` words them ``rule NAME: no key field 'k' in the event``, ``rule NAME: a key
    is ...``, ``rule NAME: no time field ...``, ``rule NAME: time field 'ts': ...``.
    """
    text = why.split(": ", 1)[1] if why.startswith("rule ") and ": " in why else why
    text = text.lower()
    if text.startswith("no key field"):
        return "missing-key"
    if text.startswith("no time field"):
        return "missing-time"
    if text.startswith("time field"):
        return "invalid-time"
    if "key" in text:
        return "invalid-key"
    if "json object" in text:
        return "not-an-object"
    return "unusable"
