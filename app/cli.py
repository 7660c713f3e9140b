"""The ``kairos`` command line.

Each sub-command lives in its own module under :mod:`app.commands` and exposes
``register(subparsers)``; this module only assembles them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules, in the order ``kairos --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "app.commands.kafka",
    "app.commands.worker",
    "app.commands.demo",
    "app.commands.simulate",
    "app.commands.rules",
    "app.commands.backtest",
)

DESCRIPTION = """\
Kairos: pattern-detection agents for Apache Kafka.

Detect sequences of events per entity (a flight delayed and then the connection
missed; a cart filled and no checkout within 30 minutes) and emit offers or
alerts while the moment still matters.
"""

EPILOG = """\
examples:
  kairos kafka start            start a local Apache Kafka (KRaft) for development
  kairos --help                 this text; every sub-command has its own --help

Configuration comes from the environment (KAFKA_BOOTSTRAP_SERVERS, KAIROS_*):
see README.md.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kairos",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
