"""``kairos backtest``: run rules over a JSON-lines event file, offline, as the runtime would."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import orjson

HELP = "run rules over a JSON-lines event file (offline, same engine as the runtime)"

DESCRIPTION = """\
Read events (one JSON object per line, in file order), run every rule exactly as the runtime
does (event time, per-rule watermarks, late events) and write one JSON object per detection:
{"rule", "version", "key", "kind": "match"|"timeout"|"late", "stages": {stage: [event ids]},
"start", "end", "data"}. Event ids come from the rule's `id` field, else the event's 0-based
line number. At the end of input the watermark passes every event (pending timeouts and
absence matches fire) unless --no-flush. Malformed lines are reported and skipped.
"""

EPILOG = """\
examples:
  kairos backtest --rules rules/ --events last-week.jsonl
  kairos backtest --rules cart.yaml --events events.jsonl --out detections.jsonl --no-flush
  kairos backtest --rules rules/ --events flights.jsonl --topic flight-events

exit codes: 0 done, 1 invalid rules, 2 unreadable input.
"""

#: Files at least this large get a progress bar when stderr is a terminal.
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "backtest",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rules", required=True, nargs="+", metavar="FILE|DIR")
    parser.add_argument("--events", required=True, metavar="FILE.jsonl", help="'-' reads stdin")
    parser.add_argument("--out", metavar="FILE", help="write detections here (default stdout)")
    parser.add_argument(
        "--no-flush", action="store_true", help="do not pass the watermark beyond the last event"
    )
    parser.add_argument(
        "--topic",
        help="treat the events as read from this topic (default: offer each event to every rule)",
    )
    parser.add_argument(
        "--context", metavar="FILE.json", help="per-key context: a JSON object {key: {...}}"
    )
    parser.add_argument("--cloudevents", action="store_true", help="write CloudEvents instead")
    parser.set_defaults(func=cmd_backtest)


@contextlib.contextmanager
def _lines(path: str) -> Iterator[tuple[Any, int | None]]:
    if path == "-":
        yield sys.stdin.buffer, None
        return
    with open(path, "rb") as f:
        yield f, os.fstat(f.fileno()).st_size


def cmd_backtest(args: argparse.Namespace) -> int:
    from cep.rules import RuleRunner, validate_paths
    from cep.rules.backtest import Backtest

    rules, issues = validate_paths(args.rules)
    if issues:
        for issue in issues:
            print(str(issue), file=sys.stderr)
        print("backtest not run: fix the rule errors above", file=sys.stderr)
        return 1
    contexts = None
    if args.context:
        try:
            with open(args.context, "rb") as f:
                contexts = orjson.loads(f.read())
        except (OSError, orjson.JSONDecodeError) as exc:
            print(f"error: --context {args.context}: {exc}", file=sys.stderr)
            return 2
        if not isinstance(contexts, dict):
            print(
                f"error: --context {args.context}: expected a JSON object of key -> context",
                file=sys.stderr,
            )
            return 2
    runner = RuleRunner(rules)
    out: IO[bytes] = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115

    def emit(d: Any) -> None:
        value = d.to_cloudevent() if args.cloudevents else d.to_dict()
        if value is not None:
            out.write(orjson.dumps(value) + b"\n")

    def malformed(line_no: int, reason: str) -> None:
        print(f"{args.events}:{line_no}: skipped: {reason}", file=sys.stderr)

    bt = Backtest(runner, emit, topic=args.topic, contexts=contexts, on_malformed=malformed)
    try:
        with _lines(args.events) as (f, size):
            if size and size >= PROGRESS_MIN_BYTES and sys.stderr.isatty():
                _feed_with_progress(bt, f, size)
            else:
                for i, line in enumerate(f):
                    bt.feed_line(i, line)
    except OSError as exc:
        print(f"error: cannot read {args.events}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        stats = bt.finish(not args.no_flush)
        if args.out:
            out.close()
        else:
            out.flush()
    _summary(runner, stats)
    return 0


def _feed_with_progress(bt: Any, f: Any, size: int) -> None:
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("events", total=size)
        done = 0
        for i, line in enumerate(f):
            bt.feed_line(i, line)
            done += len(line)
            if i % 5000 == 0:
                progress.update(task, completed=done)


def _summary(runner: Any, stats: Any) -> None:
    lines = [
        f"events: {stats.events} ({stats.malformed} malformed line(s) skipped) in "
        f"{stats.elapsed:.2f}s, {stats.events_per_second:,.0f} events/s"
    ]
    for rule in runner.rules:
        counts = {k: stats.detections[(rule.name, k)] for k in ("match", "timeout", "late")}
        part = ", ".join(f"{n} {k}" for k, n in counts.items())
        extra = ""
        if stats.unusable[rule.name]:
            extra += f", {stats.unusable[rule.name]} event(s) without key/time"
        errors, last = runner.cel_errors(rule.name)
        if errors:
            extra += f", {errors} CEL error(s) (last: {last})"
        lines.append(f"  {rule.name} v{rule.version}: {part}{extra}")
    print("\n".join(lines), file=sys.stderr)
