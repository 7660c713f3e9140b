"""``kairos rules validate|schema|list|apply``: declarative rules and the rules topic."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

HELP = "validate, publish and list declarative rules"

DESCRIPTION = """\
Rules are YAML/JSON files (see docs/rules.md and `kairos rules schema`). `validate` checks
syntax, schema, CEL conditions, stage names and the engine's pattern rules; `apply` validates
and publishes them to the compacted rules topic that every worker reads; `list` shows what
that topic holds.
"""

EPILOG = """\
examples:
  kairos rules validate rules/                 every *.yaml, *.yml, *.json under rules/
  kairos rules validate a.yaml b.yaml --json   issues as JSON (for CI annotations)
  kairos rules schema > rule.schema.json       JSON Schema for editors
  kairos rules apply rules/                    validate, then publish (all or nothing)
  kairos rules list                            name, version, source of every published rule

exit codes: 0 all valid / done, 1 invalid rules, 2 usage or Kafka error.
Kafka: KAFKA_BOOTSTRAP_SERVERS, KAFKA_SECURITY_PROTOCOL..., KAIROS_RULES_TOPIC (default kairos-rules).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rules",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    validate = sub.add_parser("validate", help="check rule files; exit 1 on any error")
    validate.add_argument("paths", nargs="+", metavar="FILE|DIR")
    validate.add_argument("--json", action="store_true", help="print issues as JSON lines")
    validate.set_defaults(func=cmd_validate)

    schema = sub.add_parser("schema", help="print the JSON Schema of a rule file")
    schema.set_defaults(func=cmd_schema)

    apply = sub.add_parser("apply", help="validate, then publish to the rules topic")
    apply.add_argument("paths", nargs="+", metavar="FILE|DIR")
    apply.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    apply.set_defaults(func=cmd_apply)

    lst = sub.add_parser("list", help="show the rules published in the rules topic")
    lst.add_argument("--json", action="store_true", help="one JSON object per rule")
    lst.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    lst.set_defaults(func=cmd_list)


def _validate(paths: list[str], as_json: bool) -> tuple[list[Any], bool]:
    from cep.rules import validate_paths

    rules, issues = validate_paths(paths)
    for issue in issues:
        if as_json:
            print(
                json.dumps(
                    {k: getattr(issue, k) for k in ("file", "path", "line", "column", "message")}
                )
            )
        else:
            print(str(issue))
    files = len({r.file.split("[document")[0] for r in rules} | {i.file for i in issues})
    summary = f"{len(rules)} rule(s) valid, {len(issues)} error(s) in {files} file(s)"
    print(summary, file=sys.stderr)
    return rules, not issues


def cmd_validate(args: argparse.Namespace) -> int:
    _, ok = _validate(args.paths, args.json)
    return 0 if ok else 1


def cmd_schema(args: argparse.Namespace) -> int:
    from cep.rules import rule_schema

    print(json.dumps(rule_schema(), indent=2))
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    rules, ok = _validate(args.paths, False)
    if not ok:
        print("nothing published: fix the errors above and run again", file=sys.stderr)
        return 1
    from app.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(asyncio.wait_for(_publish(settings, rules), args.timeout))
    except (TimeoutError, OSError) as exc:
        print(
            f"error: cannot publish to {settings.bootstrap_servers} "
            f"({type(exc).__name__}: {exc}); is Kafka running? (kairos kafka start)",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith("aiokafka"):
            print(f"error: Kafka: {exc}; check KAFKA_BOOTSTRAP_SERVERS", file=sys.stderr)
            return 2
        raise
    for rule in rules:
        print(f"published {rule.name} v{rule.version} to {settings.rules_topic}")
    return 0


async def _ensure_topic(settings: Any) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        topic = NewTopic(
            settings.rules_topic,
            num_partitions=1,
            replication_factor=settings.replication_factor,
            topic_configs={"cleanup.policy": "compact"},
        )
        try:
            await admin.create_topics([topic])
        except TopicAlreadyExistsError:
            pass
    finally:
        await admin.close()


async def _publish(settings: Any, rules: list[Any]) -> None:
    from aiokafka import AIOKafkaProducer

    await _ensure_topic(settings)
    producer = AIOKafkaProducer(
        **settings.kafka_client_kwargs(), acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        for rule in rules:
            await producer.send_and_wait(
                settings.rules_topic,
                rule.text.encode(),
                key=rule.name.encode(),
                headers=[("filename", os.path.basename(rule.file).encode())],
            )
    finally:
        await producer.stop()


async def _partitions(settings: Any) -> list[int]:
    """Partition ids of the rules topic; empty when the topic does not exist."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**settings.kafka_client_kwargs())
    await admin.start()
    try:
        if settings.rules_topic not in await admin.list_topics():
            return []
        (meta,) = await admin.describe_topics([settings.rules_topic])
        return sorted(p["partition"] for p in meta["partitions"])
    finally:
        await admin.close()


async def read_rules_topic(settings: Any) -> dict[str, bytes]:
    """Latest value of every key of the rules topic, read from the beginning to its end."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    parts = await _partitions(settings)
    latest: dict[str, bytes] = {}
    if not parts:
        return latest
    tps = [TopicPartition(settings.rules_topic, p) for p in parts]
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_kwargs(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if end[tp] > 0}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    name = rec.key.decode() if rec.key else ""
                    if rec.value is None:
                        latest.pop(name, None)
                    else:
                        latest[name] = rec.value
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp]:
                    pending.discard(tp)
        return latest
    finally:
        await consumer.stop()


def cmd_list(args: argparse.Namespace) -> int:
    from app.settings import Settings, SettingsError
    from cep.rules import RuleValidationError, load_rules_text

    try:
        settings = Settings.from_env()
        latest = asyncio.run(asyncio.wait_for(read_rules_topic(settings), args.timeout))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TimeoutError, OSError) as exc:
        print(
            f"error: cannot read {settings.rules_topic} from {settings.bootstrap_servers} "
            f"({type(exc).__name__}); is Kafka running? (kairos kafka start)",
            file=sys.stderr,
        )
        return 2
    for name in sorted(latest):
        try:
            rules = load_rules_text(latest[name].decode(), f"{settings.rules_topic}:{name}")
            row = {
                "name": name,
                "version": rules[0].version,
                "source": list(rules[0].source),
                "description": rules[0].description,
                "valid": True,
            }
        except (RuleValidationError, UnicodeDecodeError) as exc:
            row = {"name": name, "valid": False, "error": str(exc).splitlines()[-1]}
        if args.json:
            print(json.dumps(row))
        elif row["valid"]:
            print(f"{name}\tv{row['version']}\t{','.join(row['source'])}\t{row['description']}")
        else:
            print(f"{name}\tINVALID\t{row['error']}")
    if not latest:
        print(f"no rules in {settings.rules_topic}", file=sys.stderr)
    return 0
