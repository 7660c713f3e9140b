"""``kairos simulate``: seeded event streams for the seed scenarios, with their ground truth."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.simulate import Simulation

HELP = "produce a seeded scenario stream (flights, retail, supply) and its ground truth"

DESCRIPTION = """\
Simulate one of the seed scenarios: entities with stories (delays and connections at risk;
carts, views and orders; delayed shipments and stock levels), some noise, out-of-order and
late events, and a small share of malformed messages. The same arguments and --seed give the
same bytes.

Writes to Kafka (the scenario's topic and its context topic, at --rate messages/s) or, with
--out, to a JSONL file for `kairos backtest`. The ground truth (which keys must trigger which
rule, the late events, the malformed messages) goes to a JSON file next to it.
"""

EPILOG = """\
examples:
  kairos simulate --scenario flights --out flights.jsonl          file + .context.json + .truth.json
  kairos simulate --scenario retail --rate 1000 --duration 30s    to Kafka ($KAFKA_BOOTSTRAP_SERVERS)
  kairos simulate --scenario supply --entities 200 --seed 7 --out supply.jsonl

topics: flights -> flight-events (+ passenger-profiles), retail -> retail-events
(+ customer-profiles), supply -> supply-events (+ sku-master). See docs/scenarios.md.
"""

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration_s(text: str) -> float:
    """``60s``, ``2m``, ``1500ms``, ``90`` (seconds) -> seconds."""
    m = _DURATION.match(text.strip())
    if not m:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use a number with ms, s, m or h (e.g. 60s, 2m)"
        )
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def parse_start_ms(text: str) -> int:
    if text == "now":
        return int(datetime.now(UTC).timestamp() * 1000)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid --start {text!r}: use RFC 3339 (2026-03-02T00:00:00Z) or 'now'"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def register(subparsers: argparse._SubParsersAction) -> None:
    from app.simulate import SCENARIOS

    parser = subparsers.add_parser(
        "simulate",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scenario", required=True, choices=sorted(SCENARIOS))
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="messages per second to Kafka (default 500; 0 = max)",
    )
    parser.add_argument(
        "--duration",
        type=parse_duration_s,
        default=60.0,
        help="size the run to rate x duration messages (default 60s)",
    )
    parser.add_argument(
        "--entities", type=int, default=None, help="number of entities (overrides --duration)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--start",
        type=parse_start_ms,
        default=None,
        help="event time of the first story: RFC 3339 or 'now' (default 2026-03-02T00:00:00Z)",
    )
    parser.add_argument("--out", metavar="FILE.jsonl", help="write a JSONL file instead of Kafka")
    parser.add_argument(
        "--truth",
        metavar="FILE.json",
        help="ground truth path (default: next to --out, or ./SCENARIO.truth.json)",
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--topic-prefix",
        default="",
        metavar="P",
        help="prefix both topic names (e.g. test- -> test-flight-events)",
    )
    parser.set_defaults(func=cmd_simulate)


def _err(message: str) -> int:
    print(f"kairos simulate: {message}", file=sys.stderr)
    return 2


def cmd_simulate(args: argparse.Namespace) -> int:
    from app.simulate import DEFAULT_START, entities_for, simulate
    from app.simulate.sinks import write_jsonl

    if args.entities is not None and args.entities < 1:
        return _err(f"--entities must be >= 1, got {args.entities}")
    if args.rate < 0:
        return _err(f"--rate must be >= 0, got {args.rate:g}")
    entities = args.entities
    if entities is None:
        target = (args.rate if args.rate > 0 else 500.0) * args.duration
        entities = entities_for(args.scenario, int(target))
    sim = simulate(
        args.scenario,
        entities=entities,
        seed=args.seed,
        start_ms=args.start if args.start is not None else DEFAULT_START,
    )
    summary = (
        f"{args.scenario}: {len(sim.messages)} messages ({sim.stats['events']} events, "
        f"{sim.stats['malformed']} malformed, {sim.stats['late']} late, "
        f"{sim.stats['out_of_order']} out of order), {sim.stats['context']} context records, "
        f"{entities} entities"
    )
    if args.out:
        files = write_jsonl(sim, args.out)
        if args.truth:
            sim.truth.write(args.truth)
        print(summary, file=sys.stderr)
        print(
            f"wrote {files.events}, {files.context}, {args.truth or files.truth}", file=sys.stderr
        )
        return 0

    bootstrap = args.bootstrap or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        return _err(
            'no Kafka: set KAFKA_BOOTSTRAP_SERVERS (e.g. `eval "$(kairos kafka start -q)"`), '
            "pass --bootstrap, or write a file with --out FILE.jsonl"
        )
    truth_path = Path(args.truth or f"{args.scenario}.truth.json")
    sim.truth.write(truth_path)
    print(summary, file=sys.stderr)
    print(f"ground truth: {truth_path}", file=sys.stderr)
    try:
        return asyncio.run(_to_kafka(sim, bootstrap, args.rate, args.topic_prefix))
    except KeyboardInterrupt:
        print(
            "interrupted: the stream is incomplete, the ground truth does not hold", file=sys.stderr
        )
        return 130


async def _to_kafka(sim: Simulation, bootstrap: str, rate: float, prefix: str) -> int:
    from aiokafka.errors import KafkaError

    from app.simulate.sinks import Progress, produce

    progress = Progress(total=len(sim.messages))
    topic = prefix + sim.spec.topic
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        with Bar(
            TextColumn(f"[bold]{sim.spec.name}[/] -> {topic}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TimeRemainingColumn(),
            transient=False,
        ) as bar:
            task = bar.add_task("produce", total=progress.total, counts="")

            def tick(p: Progress) -> None:
                bar.update(
                    task,
                    completed=p.sent,
                    counts=f"malformed {p.malformed}, context {p.context}",
                )

            try:
                await produce(
                    sim, bootstrap, rate=rate, progress=progress, on_tick=tick, topic_prefix=prefix
                )
            except KafkaError as exc:
                return _err(f"Kafka at {bootstrap}: {exc}")
    else:
        try:
            await produce(sim, bootstrap, rate=rate, progress=progress, topic_prefix=prefix)
        except KafkaError as exc:
            return _err(f"Kafka at {bootstrap}: {exc}")
    print(
        f"sent {progress.sent} messages to {topic} ({progress.malformed} malformed) and "
        f"{progress.context} records to {prefix}{sim.spec.context_topic}",
        file=sys.stderr,
    )
    return 0
