"""Horizontal scale on a 3-broker cluster (replication 3, min.insync.replicas 2): workers
join and die under a steady stream; the offers equal the backtest of what was sent.

Topics have more partitions (6) than workers (3). A paced producer runs the whole time while
a worker is added and another one is SIGKILLed; the HTTP API is asked for keys through every
live worker throughout. Long measurements (failover time, throughput per worker count) are in
``bench/scale.py``, not here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson
import pytest

from agents.wire import partition_for
from cep.rules import RuleRunner, load_rules_text
from cep.rules.backtest import run_backtest
from tests.integration.runtime_support import KairosWorker, cloudevents, read_until
from tests.integration.scale_support import (
    BASE_TS,
    RULE,
    KeyProber,
    PacedProducer,
    ScaleSetup,
    covered,
    current,
    make_setup,
    read_all,
    require_min_insync_replicas,
    start_all,
    tails,
    topic_config,
    wait_drained,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(600)]

RATE = 40.0  # events/s: steady, well below one worker's capacity on a busy 2-core machine
AFTER_TAKEOVER = 120  # events sent after the survivors own every partition again
END_TS = 4_000_000_000_000  # the closing markers' event time: beyond every stream event


@pytest.fixture(scope="module")
def cluster(kafka_cluster3: Any) -> Any:
    asyncio.run(require_min_insync_replicas(kafka_cluster3.bootstrap, 2))
    return kafka_cluster3


def expected_offers(setup: ScaleSetup, sent: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``kairos backtest`` (cep.rules.backtest) over exactly the events sent, by CloudEvent id."""
    rules = load_rules_text(RULE.format(source=setup.source, out=setup.out), "abc.yaml")
    out: dict[str, dict[str, Any]] = {}

    def collect(det: Any) -> None:
        assert det.kind == "match", f"unexpected {det.kind} detection in the backtest"
        ce = det.to_cloudevent()
        out[ce["id"]] = ce

    run_backtest(
        RuleRunner(rules),
        [orjson.dumps(e) for e in sent],
        collect,
        topic=setup.source,
        flush=False,
    )
    return out


def difference(
    expected: dict[str, dict[str, Any]],
    got: list[dict[str, Any]],
    phases: dict[str, int],
    setup: ScaleSetup,
) -> str:
    """Which offers differ, with the keyed partition of their key and when in the stream
    (event number of the completing event against the phase boundaries) they happened."""
    ids = {e["id"] for e in got}
    lines = [f"phases (events sent): {phases}"]
    for label, which in (
        ("missing", [expected[i] for i in sorted(set(expected) - ids)]),
        ("unexpected", [e for e in got if e["id"] not in expected]),
    ):
        lines.append(f"{label}: {len(which)}")
        for e in which[:15]:
            lines.append(
                f"  key {e['subject']} (partition {partition_for(e['subject'], setup.partitions)}) "
                f"data {e['data']} completed by event {_event_number(e)}"
            )
    return "\n".join(lines)


def _event_number(ce: dict[str, Any]) -> int:
    """The stream position of the event completing an offer (event time is position-based)."""
    return (int(datetime.fromisoformat(ce["time"]).timestamp() * 1000) - BASE_TS) // 1000 - 1


def subjects_at_least(n: int):
    return lambda rs: len({orjson.loads(r.value)["subject"] for r in rs}) >= n


def open_stream(setup: ScaleSetup, workers: list[KairosWorker]) -> PacedProducer:
    """Markers first (every keyed partition learns every source partition), then the stream."""
    producer = PacedProducer(setup, RATE)
    producer.markers(1)
    wait_drained(setup, workers, workers, timeout=90)
    producer.start()
    return producer


def close_stream(
    setup: ScaleSetup,
    producer: PacedProducer,
    workers: list[KairosWorker],
    alive: list[KairosWorker],
) -> None:
    producer.stop()
    producer.markers(END_TS)
    wait_drained(setup, workers, alive, timeout=120)


@pytest.fixture(scope="module")
def alo_run(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """at_least_once: 2 workers, a third joins, the first is SIGKILLed, all under a steady
    stream, while a prober asks every live worker for keys over HTTP."""
    setup = make_setup(cluster.bootstrap, tmp_path_factory.mktemp("scale-alo"))
    first, second, third = (setup.worker(n) for n in ("w1", "w2", "w3"))
    workers = [first, second, third]
    producer: PacedProducer | None = None
    prober: KeyProber | None = None
    try:
        start_all([first, second])
        wait_for(
            lambda: covered([first, second], setup.partitions),
            60,
            "two workers sharing the 6 keyed partitions",
            workers,
            alive=[first, second],
        )
        before = {w.port: current(w) for w in (first, second)}
        producer = open_stream(setup, [first, second])

        # the HTTP probe keys: the first keys with an offer (their history is non-empty)
        early = asyncio.run(
            read_until(setup.bootstrap, setup.out, subjects_at_least(6), timeout=60, settle=0)
        )
        keys = sorted({e["subject"] for e in cloudevents(early)})[:6]
        prober = KeyProber(keys)
        prober.add(first)
        prober.add(second)
        prober.start()

        # scale out: the third worker takes partitions from the other two
        third.start(timeout=120)
        prober.add(third)
        wait_for(
            lambda: covered(workers, setup.partitions),
            90,
            "three workers sharing the 6 keyed partitions",
            workers,
            alive=workers,
        )
        after_scale_out = {w.port: current(w) for w in workers}
        sent_at_scale_out = producer.count

        # crash: the others take over the killed worker's partitions
        prober.remove(first)
        first.kill()
        survivors = [second, third]
        wait_for(
            lambda: covered(survivors, setup.partitions),
            90,
            "the survivors taking over every keyed partition",
            workers,
            alive=survivors,
        )
        after_crash = {w.port: current(w) for w in survivors}
        takeover_at = producer.count
        wait_for(
            lambda: producer.count >= takeover_at + AFTER_TAKEOVER,
            60,
            "more events after the takeover",
            workers,
            alive=survivors,
        )
        close_stream(setup, producer, workers, survivors)
        stats = prober.stop()
        prober = None

        records = asyncio.run(read_all(setup.bootstrap, setup.out))
        expected = expected_offers(setup, producer.sent)
        got = cloudevents(records)
        missing = sorted({expected[i]["subject"] for i in set(expected) - {e["id"] for e in got}})
        # what a survivor knows about keys whose offers are missing (for the failure message)
        key_states = {k: second.http_json(f"/api/keys/{k}") for k in missing[:4]}
        counts = [w.http_json("/api/rules") for w in survivors]
    finally:
        if prober is not None:
            prober.stop()
        if producer is not None:
            producer.stop()
        for w in workers:
            w.stop()
    ids = Counter(e["id"] for e in got)
    print(
        f"\nscale-out/kill: {producer.count} events, {len(expected)} offers expected, "
        f"{len(ids)} distinct received ({sum(ids.values()) - len(ids)} duplicates), "
        f"{len(set(expected) - set(ids))} missing; HTTP: {stats.summary()}"
    )
    diagnosis = f"rule counts of the survivors: {counts}\nkey states: {key_states}"
    phases = {"scale-out": sent_at_scale_out, "takeover": takeover_at}
    if set(ids) != set(expected):  # shown with -s even when the known_defect test is deselected
        print(difference(expected, got, phases, setup) + "\n" + diagnosis)
    return {
        "setup": setup,
        "before": before,
        "after_scale_out": after_scale_out,
        "after_crash": after_crash,
        "killed": first.port,
        "phases": phases,
        "events": producer.count,
        "expected": expected,
        "got": got,
        "http": stats,
        "diagnosis": diagnosis,
    }


def test_partitions_move_when_a_worker_joins_and_when_one_is_killed(
    alo_run: dict[str, Any],
) -> None:
    before, scaled, crashed = alo_run["before"], alo_run["after_scale_out"], alo_run["after_crash"]
    # each of the first two gave partitions to the newcomer; the survivors got the killed one's
    assert all(len(scaled[port]) < len(before[port]) for port in before), (before, scaled)
    for port, parts in crashed.items():
        assert set(scaled[port]) <= set(parts), (scaled, crashed)
    assert set(scaled[alo_run["killed"]]) <= {p for ps in crashed.values() for p in ps}
    # the stream ran through both changes
    phases = alo_run["phases"]
    assert 0 < phases["scale-out"] < phases["takeover"] < alo_run["events"]
    setup = alo_run["setup"]
    for topic in (setup.out, setup.keyed_topic, f"{setup.app_id}-state-changelog"):
        assert asyncio.run(topic_config(setup.bootstrap, topic, "min.insync.replicas")) == "2"


def test_every_worker_answers_for_every_key_throughout(alo_run: dict[str, Any]) -> None:
    """Each probe (a key asked through one live worker) gets the key's state, retrying while
    a rebalance runs; none gives up (90 s)."""
    stats = alo_run["http"]
    assert stats.answered > 0 and not stats.failed, stats.summary()


def test_at_least_once_offers_equal_the_backtest(alo_run: dict[str, Any]) -> None:
    """Nothing lost: the distinct offers are exactly the backtest's; a duplicate is the same
    CloudEvent. Before the worker positioned its stream partitions itself after recovery
    (`_seek_streams_before_delivery`, docs/runtime.md "Limits, known") this failed in 3 of 5
    runs: keyed messages fetched during recovery were cleared and their offsets committed.
    """
    expected, got = alo_run["expected"], alo_run["got"]
    ids = {e["id"] for e in got}
    assert len(expected) > 50
    assert ids == set(expected), (
        difference(expected, got, alo_run["phases"], alo_run["setup"]) + "\n" + alo_run["diagnosis"]
    )
    assert all(e == expected[e["id"]] for e in got)  # a duplicate is the same CloudEvent


@pytest.fixture(scope="module")
def eos_run(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """exactly_once, 3 workers, one SIGKILLed mid-stream; the read_committed view afterwards."""
    setup = make_setup(
        cluster.bootstrap,
        tmp_path_factory.mktemp("scale-eos"),
        guarantee="exactly_once",
        prefix="scale-eos",
    )
    workers = [setup.worker(n) for n in ("w1", "w2", "w3")]
    producer: PacedProducer | None = None
    try:
        start_all(workers)
        wait_for(
            lambda: covered(workers, setup.partitions),
            90,
            "three workers sharing the 6 keyed partitions",
            workers,
            alive=workers,
        )
        producer = open_stream(setup, workers)
        asyncio.run(
            read_until(
                setup.bootstrap,
                setup.out,
                subjects_at_least(6),
                timeout=90,
                settle=0,
                isolation_level="read_committed",
            )
        )
        workers[0].kill()
        survivors = workers[1:]
        wait_for(
            lambda: covered(survivors, setup.partitions),
            90,
            "the survivors taking over every keyed partition",
            workers,
            alive=survivors,
        )
        takeover_at = producer.count
        wait_for(
            lambda: producer.count >= takeover_at + AFTER_TAKEOVER,
            60,
            "more events after the takeover",
            workers,
            alive=survivors,
        )
        # The drain may fail (the survivors' detect can get stuck after the rebalance, see
        # test_exactly_once_matches_the_backtest_across_a_kill): read what was committed anyway.
        drain_error = ""
        try:
            close_stream(setup, producer, workers, survivors)
        except AssertionError as exc:
            drain_error = str(exc)
        records = asyncio.run(
            read_all(setup.bootstrap, setup.out, isolation_level="read_committed")
        )
        logs = tails(workers, 15)
    finally:
        if producer is not None:
            producer.stop()
        for w in workers:
            w.stop()
    yield {
        "got": cloudevents(records),
        "expected": expected_offers(setup, producer.sent),
        "events": producer.count,
        "logs": logs,
        "drain_error": drain_error,
    }


def test_exactly_once_read_committed_sees_no_duplicate_across_a_kill(
    eos_run: dict[str, Any],
) -> None:
    got, expected = eos_run["got"], eos_run["expected"]
    ids = Counter(e["id"] for e in got)
    print(
        f"\nexactly_once kill: {eos_run['events']} events, {len(expected)} offers expected, "
        f"{len(ids)} distinct received, {len(set(expected) - set(ids))} missing, "
        f"{len(set(ids) - set(expected))} not in the backtest; "
        f"drained: {not eos_run['drain_error']}"
    )
    assert len(got) > 50
    dup = {i: n for i, n in ids.items() if n > 1}
    assert not dup, f"{len(dup)} offers seen more than once: {list(dup.items())[:5]}"


def test_exactly_once_matches_the_backtest_across_a_kill(eos_run: dict[str, Any]) -> None:
    """Nothing lost under exactly_once either. A survivor fenced out of a moved partition
    used to stop the whole worker (docs/runtime.md, "Limits, known", item 4)."""
    got, expected = eos_run["got"], eos_run["expected"]
    assert not eos_run["drain_error"], eos_run["drain_error"]
    received = {e["id"] for e in got}
    missing, extra = set(expected) - received, received - set(expected)
    assert not missing and not extra, (
        f"{len(missing)} of {len(expected)} offers missing for read_committed, {len(extra)} not "
        f"in the backtest; missing e.g. {sorted(expected[i]['subject'] for i in missing)[:10]}\n"
        f"{eos_run['logs']}"
    )
