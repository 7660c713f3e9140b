"""``kairos worker``: run one Kairos worker (Faust) until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.settings import Settings

HELP = "run a worker: ingest, detect, emit offers and alerts"

DESCRIPTION = """\
Run one Kairos worker. It reads the rules topic (publishing the files of KAIROS_RULES_DIR
first), ingests the rules' source topics, detects the patterns per key with state in
changelog-backed tables, and sends CloudEvents to the rules' topics. Start more workers with
the same KAIROS_APP_ID to share the partitions.

All configuration comes from the environment (see README.md or `kairos worker --settings`).
"""

EPILOG = """\
examples:
  KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 KAIROS_RULES_DIR=scenarios/flights/rules kairos worker
  kairos worker --rules scenarios/flights/rules --web-port 6067
  kairos worker --settings          list every environment variable with its default
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--rules", metavar="PATH", help="rule files to apply at start (KAIROS_RULES_DIR)"
    )
    parser.add_argument("--web-port", type=int, help="HTTP port (KAIROS_WEB_PORT)")
    parser.add_argument("--web-host", help="HTTP interface (KAIROS_WEB_HOST)")
    parser.add_argument(
        "--settings", action="store_true", help="print the environment variables and exit"
    )
    parser.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    from app.settings import ENV_SETTINGS, Settings, SettingsError

    if args.settings:
        for env, default, doc in ENV_SETTINGS:
            print(f"{env:32} {'' if default is None else default!s:18} {doc}")
        return 0
    overrides = {
        "KAIROS_RULES_DIR": args.rules,
        "KAIROS_WEB_PORT": None if args.web_port is None else str(args.web_port),
        "KAIROS_WEB_HOST": args.web_host,
    }
    environ = {**os.environ, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run(settings)
    return 0


def run(settings: Settings) -> None:
    """Start the worker and block until it stops."""
    import faust

    from app.faust_app import create_runtime
    from app.logging import configure, logging_config

    configure(settings.log_level, settings.log_format)
    runtime = create_runtime(settings)
    _declare_keyed_topic(runtime)
    _tune_gc()
    worker = faust.Worker(
        runtime.app,
        loglevel=settings.log_level,
        logging_config=logging_config(settings.log_level, settings.log_format),
        redirect_stdouts=False,
        quiet=True,
    )
    worker.execute_from_commandline()


def _declare_keyed_topic(runtime: Any) -> None:
    """Create the internal keyed topic before the consumer joins its group.

    Faust declares internal topics while it starts, racing the consumer's first join: a
    worker that joins first is assigned no keyed partition and never gets a rebalance that
    would give it one, so it ingests events but detects nothing. Creating the topic up front,
    on a loop of its own that is closed before Faust starts, removes the race.
    """
    import asyncio

    from agents.admin import ensure_topics

    settings = runtime.settings
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(
            ensure_topics(settings, [(runtime.keyed_topic, settings.partitions, {})])
        )
    finally:
        loop.close()


def _tune_gc() -> None:
    """Keep CPython's cyclic GC off the hot path.

    The engine allocates many short-lived tuples per event; at the default gen-0 threshold
    (700) collections cost 20-30 % of detect time (BENCHMARKS.md, engine section). Freezing
    what start-up allocated and raising the threshold keeps collections rare and cheap.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
