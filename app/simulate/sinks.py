"""Where a simulation goes: JSONL files (for the backtest) or Kafka topics (aiokafka).

File layout for ``--out X.jsonl``: ``X.jsonl`` (one message value per line, malformed ones
included, bytes as produced), ``X.context.json`` (entity records as ``{key: record}``, the
form ``kairos backtest --context`` reads) and ``X.truth.json``.

To Kafka: the context records first (key = entity id), flushed, then the events, paced at
``rate`` messages per second (``rate <= 0``: as fast as the client goes), in stream order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from app.simulate.base import Simulation


@dataclass(frozen=True)
class OutputFiles:
    events: Path
    context: Path
    truth: Path


def output_files(out: str | Path) -> OutputFiles:
    """The three files written for ``--out``: events, context records, ground truth."""
    path = Path(out)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    base = path.with_name(stem)
    return OutputFiles(
        events=path,
        context=base.with_name(f"{stem}.context.json"),
        truth=base.with_name(f"{stem}.truth.json"),
    )


def write_jsonl(sim: Simulation, out: str | Path) -> OutputFiles:
    files = output_files(out)
    with files.events.open("wb") as f:
        for m in sim.messages:
            f.write(m.value + b"\n")
    key = sim.spec.entity_field
    contexts = {str(rec[key]): rec for rec in sim.context}
    files.context.write_bytes(orjson.dumps(contexts, option=orjson.OPT_INDENT_2) + b"\n")
    sim.truth.write(files.truth)
    return files


@dataclass
class Progress:
    """Live counts of a production run (read by progress bars and the demo)."""

    total: int
    sent: int = 0
    malformed: int = 0
    context: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.sent >= self.total


async def produce_context(sim: Simulation, producer: Any, topic: str | None = None) -> int:
    """Send the context records (key = entity id) and flush; return how many."""
    spec = sim.spec
    topic = topic or spec.context_topic
    for rec in sim.context:
        await producer.send(topic, orjson.dumps(rec), key=str(rec[spec.entity_field]).encode())
    await producer.flush()
    return len(sim.context)


async def produce_events(
    sim: Simulation,
    producer: Any,
    *,
    rate: float = 500.0,
    topic: str | None = None,
    progress: Progress | None = None,
    on_tick: Callable[[Progress], None] | None = None,
) -> Progress:
    """Send the stream in order, paced at ``rate`` messages/s (``<= 0``: unpaced)."""
    topic = topic or sim.spec.topic
    progress = progress or Progress(total=len(sim.messages))
    start = time.monotonic()
    progress.started = start
    pending: list[Any] = []
    for i, m in enumerate(sim.messages):
        if rate > 0:
            delay = start + i / rate - time.monotonic()
            if delay > 0.005:
                await asyncio.sleep(delay)
                pending = [f for f in pending if not f.done()]
                if on_tick is not None:
                    on_tick(progress)
        pending.append(await producer.send(topic, m.value, key=m.key))
        progress.sent += 1
        if m.event is None:
            progress.malformed += 1
        if len(pending) >= 5000:
            await asyncio.gather(*pending)
            pending.clear()
    await producer.flush()
    if pending:
        await asyncio.gather(*pending)
    if on_tick is not None:
        on_tick(progress)
    return progress


def new_producer(bootstrap: str, **config: Any) -> Any:
    """An idempotent aiokafka producer (acks=all) for simulated streams."""
    from aiokafka import AIOKafkaProducer

    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=True, **config
    )


async def produce(
    sim: Simulation,
    bootstrap: str,
    *,
    rate: float = 500.0,
    progress: Progress | None = None,
    on_tick: Callable[[Progress], None] | None = None,
    topic_prefix: str = "",
) -> Progress:
    """Context records first, then the stream, to the scenario's topics (with a prefix)."""
    progress = progress or Progress(total=len(sim.messages))
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        progress.context = await produce_context(
            sim, producer, topic_prefix + sim.spec.context_topic
        )
        return await produce_events(
            sim,
            producer,
            rate=rate,
            topic=topic_prefix + sim.spec.topic,
            progress=progress,
            on_tick=on_tick,
        )
    finally:
        await producer.stop()
