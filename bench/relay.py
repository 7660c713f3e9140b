"""A bare aiokafka relay shaped like a Kairos worker: the latency floor of the Kafka client.

    python -m bench.relay --bootstrap 127.0.0.1:9092 --src SRC --out OUT [--hops 2] [--pipelined]

It reads the paced stream of :func:`bench.common.paced_stream` and, for every event of type B
(the one that completes a match of :data:`bench.common.LATENCY_RULE`), sends the alert the
stream waits for: ``{"subject": <user>, "data": {"sent": <send time>}}``. With ``--hops 2``
(the default) the events take the worker's path: stage 1 forwards the A and B events (the
ones the latency rule can use; the C events stay, as the worker's ingest keeps them back) to
an internal topic keyed by user, stage 2 reads it and sends the alerts. With ``--hops 1``
stage 1 sends the alerts itself.

No rules, no state, no Faust: one process, plain consumers and one producer
(``linger_ms=0``). Each stage waits until Kafka acknowledged a poll's records, commits, and
only then polls again. ``--pipelined`` polls again at once instead, as the worker's ingest
does: up to four polls in flight, acknowledged offsets committed at most every 0.1 s
(lower latency, more requests and CPU per event). The ``bench.e2e`` latency runs put it
next to the worker as the baseline of the same run. It prints ``ready`` once every consumer
is positioned at the end of its topic, and runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import PARTITIONS, create_topics


async def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest",
    )
    await consumer.start()
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    await consumer.seek_to_end()
    for tp in consumer.assignment():
        await consumer.position(tp)
    return consumer


def _forward(
    producer: AIOKafkaProducer, out: str, final: bool
) -> Callable[[Any], Awaitable[asyncio.Future[Any] | None]]:
    async def forward(r: Any) -> asyncio.Future[Any] | None:
        event = orjson.loads(r.value)
        kind = event.get("type")
        if final:
            if kind == "B":
                alert = {"subject": event["user"], "data": {"sent": event["sent"]}}
                return await producer.send(out, orjson.dumps(alert), key=r.key)
        elif kind in ("A", "B"):
            return await producer.send(out, r.value, key=r.key)
        return None

    return forward


async def _stage(
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    out: str,
    final: bool,
    max_inflight: int,
    commit_interval: float,
) -> None:
    """Poll, forward, commit the acknowledged offsets. Serial (``max_inflight=0``,
    ``commit_interval=0``): every poll's sends are awaited and committed before the next
    poll; pipelined: up to ``max_inflight`` polls unacknowledged, commits at most every
    ``commit_interval`` seconds."""
    forward = _forward(producer, out, final)
    inflight: deque[tuple[asyncio.Future[Any], dict[TopicPartition, int]]] = deque()
    acked: dict[TopicPartition, int] = {}
    committed_at = 0.0
    while True:
        polled = await consumer.getmany(timeout_ms=5 if inflight else 500, max_records=2000)
        if polled:
            futures = [f for records in polled.values() for r in records if (f := await forward(r))]
            offsets = {tp: records[-1].offset + 1 for tp, records in polled.items()}
            inflight.append((asyncio.gather(*futures), offsets))
        while inflight and (inflight[0][0].done() or len(inflight) > max_inflight):
            sends, offsets = inflight.popleft()
            await sends
            acked.update(offsets)
        if acked and time.monotonic() - committed_at >= commit_interval:
            await consumer.commit(acked)
            acked, committed_at = {}, time.monotonic()


async def relay(bootstrap: str, src: str, out: str, hops: int, pipelined: bool = False) -> None:
    group = f"bench-relay-{uuid.uuid4().hex[:6]}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await producer.start()
    topics = [src] + [f"{out}-hop{h}" for h in range(1, hops)]
    if hops > 1:
        await create_topics(bootstrap, topics[1:])
    consumers = [await _consumer(bootstrap, t, group) for t in topics]
    print("ready", flush=True)
    targets = [*topics[1:], out]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    max_inflight, commit_interval = (4, 0.1) if pipelined else (0, 0.0)
    tasks = [
        asyncio.create_task(_stage(c, producer, t, t == out, max_inflight, commit_interval))
        for c, t in zip(consumers, targets, strict=True)
    ]
    try:
        await stop.wait()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in consumers:
            await c.stop()
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument("--src", required=True, help="the paced stream's source topic")
    parser.add_argument("--out", required=True, help="the topic the paced stream reads alerts from")
    parser.add_argument(
        "--hops", type=int, default=2, choices=(1, 2), help="Kafka hops, as the worker's 2"
    )
    parser.add_argument(
        "--pipelined",
        action="store_true",
        help="poll again before the previous polls are acknowledged (as the worker's ingest)",
    )
    args = parser.parse_args()
    asyncio.run(relay(args.bootstrap, args.src, args.out, args.hops, args.pipelined))


if __name__ == "__main__":
    main()
