"""``kairos demo``: the three seed scenarios live on Kafka, scored against their ground truth.

Starts a local broker unless ``KAFKA_BOOTSTRAP_SERVERS`` is set, applies the flights, retail
and supply rule packs, starts a worker (a subprocess), runs the three simulators, prints the
dashboard URL and a live summary (events, matches per rule, dead letters) and, once the worker
has processed every event, a report: precision and recall per rule against the ground truth,
late events, and the dead-letter topic against the malformed messages injected.

Without ``--duration`` it keeps the worker (and dashboard) up after the report until Ctrl-C.
With ``--duration N`` it runs unattended: the streams are sized to be produced in about 60 %
of N seconds, the report is printed as soon as everything is processed (at most N + 30 s),
and the exit code is 0 only if every rule fired with 100 % precision and recall and the DLQ
holds exactly the injected messages. Ctrl-C stops everything it started, at any point.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HELP = "run the seed scenarios live (broker, worker, simulators) and score the detections"

EPILOG = """\
examples:
  kairos demo                      until Ctrl-C; dashboard URL printed at start
  kairos demo --duration 45        unattended; final report; exit 1 unless all is exact
  make demo DURATION=45            the same from a fresh clone (creates .venv first)

Topics: the scenario topics (flight-events, ...) and offers/alerts; when they already exist on
the broker (a reused KAFKA_BOOTSTRAP_SERVERS), every demo topic gets a run prefix instead.
"""

SCENARIOS = ("flights", "retail", "supply")
ROOT = Path(__file__).resolve().parents[2]
PRODUCE_SHARE = 0.6
DRAIN_GRACE_S = 30.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help=HELP,
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECONDS",
        help="run unattended for about SECONDS, print the report, exit",
    )
    parser.add_argument(
        "--rate", type=float, default=150.0, help="messages/s per scenario (default 150)"
    )
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    parser.add_argument(
        "--scenarios",
        type=_scenario_list,
        default=SCENARIOS,
        metavar="A,B",
        help="which scenarios to run (default flights,retail,supply)",
    )
    parser.add_argument("--web-port", type=int, default=None, help="dashboard port (default: free)")
    parser.add_argument(
        "--partitions", type=int, default=4, help="worker partitions (KAIROS_PARTITIONS, default 4)"
    )
    parser.add_argument(
        "--report-json", metavar="FILE", help="also write the final report as JSON to FILE"
    )
    parser.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.duration is not None and args.duration < 10:
        print("kairos demo: --duration must be at least 10 seconds", file=sys.stderr)
        return 2
    if args.rate <= 0:
        print("kairos demo: --rate must be > 0", file=sys.stderr)
        return 2
    cluster = None
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        from app.kafka import KafkaCluster, KafkaLauncherError

        print("KAFKA_BOOTSTRAP_SERVERS not set: starting a local broker...", file=sys.stderr)
        cluster = KafkaCluster(brokers=1)
        try:
            bootstrap = cluster.start()
        except KafkaLauncherError as exc:
            print(f"kairos demo: {exc}", file=sys.stderr)
            return 1
        print(
            f"local broker at {bootstrap} (pid {', '.join(map(str, cluster.pids))})",
            file=sys.stderr,
        )
    try:
        return asyncio.run(Demo(args, bootstrap).run())
    except KeyboardInterrupt:
        return 130
    finally:
        if cluster is not None:
            print("stopping the local broker...", file=sys.stderr)
            cluster.stop()


class Demo:
    def __init__(self, args: argparse.Namespace, bootstrap: str) -> None:
        self.args = args
        self.bootstrap = bootstrap
        self.run_id = uuid.uuid4().hex[:6]
        self.app_id = f"kairos-demo-{self.run_id}"
        self.prefix = ""
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self.out = _console()
        self.context_topics: set[str] = set()

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)
        from app.simulate.live import LiveRunError

        with tempfile.TemporaryDirectory(prefix="kairos-demo-") as tmp:
            try:
                return await self._run(Path(tmp))
            except LiveRunError as exc:
                self.out.print(f"[red]kairos demo:[/] {exc}")
                return 1
            except _Interrupted:
                self.out.print("interrupted: stopping...")
                return 130

    async def _run(self, tmp: Path) -> int:
        from app.simulate import entities_for, simulate
        from app.simulate.live import (
            OutputReader,
            WorkerAPI,
            WorkerProcess,
            create_topics,
            existing_topics,
            free_port,
        )

        args = self.args
        produce_s = (args.duration if args.duration is not None else 120.0) * PRODUCE_SHARE
        sims = {}
        for name in args.scenarios:
            n = entities_for(name, int(args.rate * produce_s))
            sims[name] = simulate(name, entities=n, seed=args.seed)

        packs = [ROOT / "scenarios" / name / "rules" for name in args.scenarios]
        topics = _topics(sims)
        if set(topics) & await existing_topics(self.bootstrap):
            self.prefix = f"demo-{self.run_id}-"
        rule_dir = tmp / "rules"
        names, self.context_topics = _write_rules(packs, rule_dir, self.prefix)
        dlq_topic = f"{self.app_id}-dlq"
        partitions = {self.prefix + t: n for t, n in topics.items()}
        partitions[dlq_topic] = 1
        rules_topic = f"{self.app_id}-rules"
        partitions[rules_topic] = 1
        await create_topics(
            self.bootstrap, partitions, {rules_topic: {"cleanup.policy": "compact"}}
        )

        port = args.web_port or free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAIROS_APP_ID": self.app_id,
            "KAIROS_RULES_TOPIC": rules_topic,
            "KAIROS_RULES_STATUS_TOPIC": f"{self.app_id}-rules-status",
            "KAIROS_DLQ_TOPIC": dlq_topic,
            "KAIROS_PARTITIONS": str(args.partitions),
            "KAIROS_REPLICATION_FACTOR": "1",
            "KAIROS_STANDBY_REPLICAS": "0",
            "KAIROS_STORE": "memory://",
            "KAIROS_DATA_DIR": str(tmp / "data"),
            "KAIROS_WEB_PORT": str(port),
            "KAIROS_WEB_HOST": "127.0.0.1",
            "KAIROS_LOG_FORMAT": "json",
            # the demo applies its own rules and reads the API without a token
            "KAIROS_RULES_DIR": "",
            "KAIROS_READ_TOKEN": "",
        }
        await self._publish_rules(env, rule_dir)

        worker = WorkerProcess(env=env, log_path=tmp / "worker.log")
        reader = OutputReader(
            self.bootstrap,
            [self.prefix + "offers", self.prefix + "alerts"],
            dlq_topic,
        )
        worker.start()
        self.out.print(
            f"broker {self.bootstrap}; worker {self.app_id} starting "
            f"(pid {worker.pid}, log {worker.log_path})"
        )
        try:
            await self._until(worker.wait_ready(90), "worker start")
            async with WorkerAPI(port) as api:
                await self._wait_rules(api, names, worker)
                self.out.print(f"[bold]dashboard: http://127.0.0.1:{port}/[/]")
                await reader.start()
                try:
                    return await self._stream(sims, api, reader, worker)
                finally:
                    await reader.stop()
        finally:
            self.out.print("stopping the worker...")
            worker.stop()

    async def _stream(self, sims: dict[str, Any], api: Any, reader: Any, worker: Any) -> int:
        from app.simulate.report import build_report, render
        from app.simulate.sinks import Progress, new_producer, produce_context, produce_events

        producer = new_producer(self.bootstrap)
        await producer.start()
        progress = {name: Progress(total=len(s.messages)) for name, s in sims.items()}
        try:
            for name, sim in sims.items():
                progress[name].context = await produce_context(
                    sim, producer, self.prefix + sim.spec.context_topic
                )
            await self._wait_context(sims)
            tasks = [
                asyncio.create_task(
                    produce_events(
                        sim,
                        producer,
                        rate=self.args.rate,
                        topic=self.prefix + sim.spec.topic,
                        progress=progress[name],
                    )
                )
                for name, sim in sims.items()
            ]
            deadline = None
            if self.args.duration is not None:
                deadline = time.monotonic() + self.args.duration + DRAIN_GRACE_S
            done = await self._watch(sims, progress, tasks, api, reader, worker, deadline)
        finally:
            await producer.stop()

        rules = await api.rules()
        late = {name: int(r.get("counts", {}).get("late", 0)) for name, r in rules.items()}
        dead = {
            name: reader.dead.get(self.prefix + sim.spec.topic, []) for name, sim in sims.items()
        }
        report = build_report({n: s.truth for n, s in sims.items()}, reader.cloudevents, dead, late)
        self.out.print(render(report))
        problems = report.problems()
        if not done:
            problems.insert(0, "incomplete: the worker had not processed every event in time")
        if self.args.report_json:
            Path(self.args.report_json).write_bytes(_report_json(report, done, problems))
        if problems:
            self.out.print("[red]not exact:[/] " + "; ".join(problems))
        else:
            self.out.print(
                "[green]exact:[/] every rule fired, precision and recall 100 %, "
                "late events and dead letters as injected"
            )
        if self.args.duration is None and not self.stop.is_set():
            self.out.print("the worker keeps running for the dashboard: Ctrl-C to stop")
            await self.stop.wait()
        return 0 if done and not problems else 1

    # -- waiting on conditions -----------------------------------------------------------
    async def _until(self, coro: Any, what: str) -> Any:
        task = asyncio.ensure_future(coro)
        stopper = asyncio.ensure_future(self.stop.wait())
        finished, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in finished:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise _Interrupted(what)
        stopper.cancel()
        return task.result()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)
        if self.stop.is_set():
            raise _Interrupted("sleep")

    async def _publish_rules(self, env: dict[str, str], rule_dir: Path) -> None:
        from agents.rules_service import publish_rules
        from app.settings import Settings
        from cep.rules import RuleValidationError

        settings = Settings.from_env({**os.environ, **env})
        try:
            names = await publish_rules(settings, [rule_dir])
        except RuleValidationError as exc:
            from app.simulate.live import LiveRunError

            raise LiveRunError(f"the rule packs do not validate:\n{exc}") from None
        self.out.print(f"applied {len(names)} rules: {', '.join(names)}")

    async def _wait_rules(self, api: Any, names: list[str], worker: Any) -> None:
        from app.simulate.live import LiveRunError

        deadline = time.monotonic() + 60
        active: dict[str, Any] = {}
        while time.monotonic() < deadline:
            active = await api.rules()
            if set(names) <= set(active):
                return
            if not worker.alive():
                break
            await self._sleep(0.5)
        missing = sorted(set(names) - set(active))
        raise LiveRunError(
            f"rules not active in the worker after 60s: {', '.join(missing)}; worker log:\n"
            f"{worker.log_tail()}"
        )

    async def _wait_context(self, sims: dict[str, Any]) -> None:
        """Context records must be in the worker before the events that read them."""
        from app.simulate.live import LiveRunError, group_caught_up

        topics = [self.prefix + s.spec.context_topic for s in sims.values()]
        used = [t for t in topics if t in self.context_topics]
        if not used:
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if await group_caught_up(self.bootstrap, f"{self.app_id}-ingest", used):
                return
            await self._sleep(0.5)
        raise LiveRunError(f"the worker did not read the context topics {used} within 60s")

    async def _watch(
        self,
        sims: dict[str, Any],
        progress: dict[str, Any],
        tasks: list[asyncio.Task[Any]],
        api: Any,
        reader: Any,
        worker: Any,
        deadline: float | None,
    ) -> bool:
        """Print the live summary until every event is processed (True) or the deadline."""
        from app.simulate.live import LiveRunError

        expected_events = {rule: s.truth.events for s in sims.values() for rule in s.truth.expected}
        live = None
        if self.out.is_terminal:
            from rich.live import Live

            live = Live(console=self.out, refresh_per_second=2, transient=False)
            live.start()
        last_print = 0.0
        try:
            while True:
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise LiveRunError(f"a simulator failed: {t.exception()}")
                if not worker.alive():
                    raise LiveRunError(f"the worker died; its log ends with:\n{worker.log_tail()}")
                rules = await api.rules()
                totals = await api.totals()
                now = time.monotonic()
                finished = all(t.done() for t in tasks) and _complete(
                    rules, expected_events, reader, totals
                )
                if live is not None:
                    live.update(self._summary_table(progress, rules, totals, reader))
                elif finished or now - last_print >= 5.0:
                    self._summary_line(progress, totals, reader)
                    last_print = now
                if finished:
                    return True
                if deadline is not None and now > deadline:
                    return False
                await self._sleep(0.5)
        finally:
            if live is not None:
                live.stop()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    def _summary_line(self, progress: dict[str, Any], totals: dict[str, int], reader: Any) -> None:
        elapsed = time.monotonic() - self.started
        sent = ", ".join(f"{n} {p.sent}/{p.total}" for n, p in progress.items())
        matches = " ".join(f"{r}={n}" for r, n in sorted(reader.matches.items()))
        self.out.print(
            f"[{elapsed:5.0f}s] produced {sent} | worker events {totals.get('events', 0)} | "
            f"matches {matches or '-'} | DLQ {reader.dlq_count}"
        )

    def _summary_table(
        self, progress: dict[str, Any], rules: dict[str, Any], totals: dict[str, int], reader: Any
    ) -> Any:
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        table = Table(
            title=f"kairos demo: {elapsed:.0f}s, worker events {totals.get('events', 0)}, "
            f"DLQ {reader.dlq_count}",
            title_justify="left",
        )
        for col in ("scenario", "produced", "rule", "events", "matches", "late"):
            table.add_column(col, justify="left" if col in ("scenario", "rule") else "right")
        for name, p in progress.items():
            first = True
            for rule in sorted(r for r, info in rules.items() if _scenario_of(info, name)):
                counts = rules[rule].get("counts", {})
                table.add_row(
                    name if first else "",
                    f"{p.sent}/{p.total}" if first else "",
                    rule,
                    str(counts.get("events", 0)),
                    str(reader.matches.get(rule, 0)),
                    str(counts.get("late", 0)),
                )
                first = False
        return table


def _scenario_of(rule_info: dict[str, Any], scenario: str) -> bool:
    """Whether a rule (from ``/api/rules``) reads the scenario's topic."""
    from app.simulate import spec

    source = rule_info.get("source")
    topics = source if isinstance(source, list) else [source]
    return any(str(t).endswith(spec(scenario).topic) for t in topics)


def _complete(
    rules: dict[str, Any], expected_events: dict[str, int], reader: Any, totals: dict[str, int]
) -> bool:
    """Every rule saw every event of its stream, and the readers hold what the worker emitted."""
    for rule, n in expected_events.items():
        counts = rules.get(rule, {}).get("counts", {})
        if counts.get("events", 0) < n:
            return False
        if reader.matches.get(rule, 0) < counts.get("matches", 0):
            return False
        if reader.timeouts.get(rule, 0) < counts.get("timeouts", 0):
            return False
    return reader.dlq_count >= totals.get("dlq", 0)


def _topics(sims: dict[str, Any]) -> dict[str, int]:
    """Demo topics -> partitions. One partition per source keeps the ingest order = produced order."""
    topics = {}
    for sim in sims.values():
        topics[sim.spec.topic] = 1
        topics[sim.spec.context_topic] = 1
    topics["offers"] = 3
    topics["alerts"] = 3
    return topics


def _write_rules(packs: list[Path], dest: Path, prefix: str) -> tuple[list[str], set[str]]:
    """Copy the packs into ``dest``, prefixing every topic they name.

    Returns the rule names and the (prefixed) context topics the rules read.
    """
    import yaml

    dest.mkdir(parents=True)
    names = []
    context_topics: set[str] = set()
    for pack in packs:
        for path in sorted(pack.glob("*.yaml")):
            doc = yaml.safe_load(path.read_text())
            names.append(doc["name"])
            if prefix:
                doc["source"] = _prefixed(doc["source"], prefix)
                if isinstance(doc.get("context"), dict):
                    doc["context"]["source"] = _prefixed(doc["context"]["source"], prefix)
                for action in ("emit", "on_timeout"):
                    if isinstance(doc.get(action), dict) and "topic" in doc[action]:
                        doc[action]["topic"] = prefix + doc[action]["topic"]
                (dest / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
            else:
                (dest / path.name).write_bytes(path.read_bytes())
            ctx = doc.get("context")
            if isinstance(ctx, dict):
                src = ctx["source"]
                context_topics.update(src if isinstance(src, list) else [src])
    return names, context_topics


def _prefixed(value: Any, prefix: str) -> Any:
    return [prefix + v for v in value] if isinstance(value, list) else prefix + value


def _scenario_list(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown scenario(s) {', '.join(unknown) or text!r}: choose from {', '.join(SCENARIOS)}"
        )
    return names


class _Interrupted(Exception):
    pass


def _report_json(report: Any, done: bool, problems: list[str]) -> bytes:
    import orjson

    doc = {
        "complete": done,
        "problems": problems,
        "rules": {
            r.rule: {
                "scenario": name,
                "expected": r.expected,
                "detected": r.detected,
                "matches": r.matches,
                "precision": r.precision,
                "recall": r.recall,
                "false_positives": r.false_positives,
                "false_negatives": r.false_negatives,
                "late_injected": report.late[r.rule][0],
                "late_reported": report.late[r.rule][1],
            }
            for name, s in report.scores.items()
            for r in s.rules.values()
        },
        "dead_letters": {
            d.scenario: {
                "injected": d.injected,
                "received": d.received,
                "missing": d.missing,
                "unexpected": d.unexpected,
                "reasons": dict(d.reasons),
            }
            for d in report.dead_letters.values()
        },
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=150)
    return console
