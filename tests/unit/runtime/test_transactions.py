"""exactly_once: a keyed partition's transaction never ends inside a message, and a lost one
(fenced, or its producer broken) costs that partition's work, not the worker.

The worker is built as in production (``create_runtime``); only the aiokafka transactional
producers under Faust's driver are fakes that record what reaches them.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from faust.exceptions import ProducerSendError
from faust.types import TP

import app.transactions as transactions
from app.faust_app import Runtime, _handle, create_runtime
from app.settings import Settings
from app.transactions import TransactionLost, lost_transaction, transactional_id
from tests.unit.runtime.test_detect import A_THEN_B, PARTS, batch


class FakeTxnProducer:
    """An aiokafka transactional producer: sends, offsets and transaction ends go to ``log``."""

    def __init__(self, name: str, log: list[Any]) -> None:
        self.name = name
        self.log = log
        self.fail_send: BaseException | None = None
        self.fail_commit: BaseException | None = None
        self.hold: asyncio.Event | None = None  # sends wait until it is set
        self.hold_commit: asyncio.Event | None = None  # commits wait until it is set
        self.stopped = False

    async def send(self, topic: str, value: Any, **kwargs: Any) -> asyncio.Future[None]:
        if self.fail_send is not None:
            raise self.fail_send
        self.log.append(("send", self.name, topic))
        if self.hold is not None:
            await self.hold.wait()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        self.log.append(("offsets", self.name, dict(offsets)))

    async def commit_transaction(self) -> None:
        if self.hold_commit is not None:
            await self.hold_commit.wait()
        if self.fail_commit is not None:
            raise self.fail_commit
        self.log.append(("commit", self.name))

    async def begin_transaction(self) -> None:
        self.log.append(("begin", self.name))

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        self.log.append(("flush", self.name))
        await asyncio.sleep(0)


class World:
    def __init__(self, rt: Runtime, producers: dict[int, FakeTxnProducer], log: list[Any]):
        self.rt = rt
        self.producers = producers
        self.log = log
        self.rejoins = 0

    @property
    def driver(self) -> Any:
        return self.rt.app.consumer.transactions.producer

    def tid(self, partition: int) -> str:
        return transactional_id(self.rt.app, self.rt.keyed_topic, partition)

    def local_keys(self, partition: int) -> list[bytes]:
        from app.faust_app import _key_partition

        store = self.rt.app.tables["state"].data
        return [k for k in list(store) if _key_partition(k, PARTS) == partition]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    rt = create_runtime(
        Settings.from_env(
            {
                "KAIROS_APP_ID": "txn",
                "KAIROS_PROCESSING_GUARANTEE": "exactly_once",
                "KAIROS_PARTITIONS": str(PARTS),
            }
        ),
        with_web=False,
    )
    assert rt.book.apply("a-then-b", A_THEN_B.format(version=1, first="A")).ok
    rt.app.assignor._topic_groups = {rt.keyed_topic: 1}  # what an assignment sets
    log: list[Any] = []
    world = World(rt, {}, log)
    driver = world.driver
    monkeypatch.setattr(driver, "_producer", FakeTxnProducer("default", log))  # started
    for p in range(PARTS):
        world.producers[p] = FakeTxnProducer(f"p{p}", log)
        monkeypatch.setitem(driver._transaction_producers, world.tid(p), world.producers[p])
        monkeypatch.setitem(driver._trn_locks, world.tid(p), asyncio.Lock())

    async def ack(event: Any) -> None:
        log.append(("ack", event))

    rt.writer._ack = ack

    def rejoin(app: Any) -> None:
        world.rejoins += 1

    monkeypatch.setattr(transactions, "request_rejoin", rejoin)
    return world


async def stopped(producer: FakeTxnProducer) -> None:
    """Wait (a bounded number of loop turns) until the retired producer was stopped."""
    for _ in range(100):
        if producer.stopped:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{producer.name} was not stopped")


def events(keys: list[str], kind: str, ts: int) -> list[dict[str, Any]]:
    return [{"id": f"{kind}-{k}", "user": k, "type": kind, "ts": ts} for k in keys]


KEYS = [f"user{i}" for i in range(40)]


def one_partition(kind: str, ts: int, offset0: int) -> tuple[int, Any]:
    """The batch of the partition holding the most of KEYS."""
    by_part = batch(events(KEYS, kind, ts), offset0=offset0)
    return max(by_part.items(), key=lambda item: len(item[1].events))


def test_lost_transaction_is_decided_by_the_guarantee_and_the_wrapped_error() -> None:
    fenced = ProducerFenced()
    wrapped = ProducerSendError("Error while sending")
    wrapped.__cause__ = fenced
    other = ProducerSendError("Error while sending")
    other.__cause__ = KafkaError()
    for exc in (fenced, IllegalOperation("not in transaction"), TransactionLost("t"), wrapped):
        assert lost_transaction(exc, exactly_once=True)
        assert not lost_transaction(exc, exactly_once=False)
    assert not lost_transaction(other, exactly_once=True)
    assert not lost_transaction(KafkaError(), exactly_once=True)


async def test_a_message_is_applied_sent_flushed_and_acked_in_its_transaction(
    world: World,
) -> None:
    partition, message = one_partition("A", 10, 0)
    outcome = await _handle(world.rt, partition, message, "event-1")
    assert outcome is not None and outcome.events == len(message.events)
    name = f"p{partition}"
    sends = [entry for entry in world.log if entry[0] == "send"]
    assert sends and all(entry[1] == name for entry in sends)  # the partition's producer only
    assert world.log[-1] == ("ack", "event-1")  # after every send of the message
    assert world.local_keys(partition)


async def test_a_commit_waits_until_the_message_in_flight_is_acked(world: World) -> None:
    partition, first = one_partition("A", 10, 0)
    _, second = one_partition("B", 20, 100)
    other = (partition + 1) % PARTS
    await _handle(world.rt, partition, first, "event-1")
    world.log.clear()
    hold = world.producers[partition].hold = asyncio.Event()
    handling = asyncio.create_task(_handle(world.rt, partition, second, "event-2"))
    while not world.log:  # the message is in flight: one send made, the next ones held
        await asyncio.sleep(0)
    offsets = {
        world.tid(other): {TP(world.rt.keyed_topic, other): 7},
        world.tid(partition): {TP(world.rt.keyed_topic, partition): 1},
    }
    committing = asyncio.create_task(world.driver.commit_transactions(offsets, "group"))
    for _ in range(50):
        await asyncio.sleep(0)
    name, other_name = f"p{partition}", f"p{other}"
    # another partition's transaction commits meanwhile; this one's waits for the message
    assert ("commit", other_name) in world.log
    assert ("commit", name) not in world.log and ("ack", "event-2") not in world.log
    hold.set()
    await asyncio.gather(handling, committing)
    mine = [entry for entry in world.log if entry[1] in (name, "event-2")]
    kinds = [entry[0] for entry in mine]
    assert kinds[-4:] == ["ack", "offsets", "commit", "begin"]
    assert set(kinds[:-4]) == {"send"}  # every send of the message precedes the commit


async def test_a_lost_transaction_drops_the_partitions_work_not_the_worker(
    world: World,
) -> None:
    partition, first = one_partition("A", 10, 0)
    _, second = one_partition("B", 20, 100)
    other = (partition + 1) % PARTS
    await _handle(world.rt, partition, first, "event-1")
    assert world.local_keys(partition)
    producer = world.producers[partition]
    producer.fail_send = ProducerFenced()  # another worker began the partition's transaction
    world.log.clear()

    assert await _handle(world.rt, partition, second, "event-2") is None

    assert ("ack", "event-2") not in world.log  # not committed: the new owner reads it again
    assert partition in world.rt.paused
    assert world.tid(partition) not in world.driver._transaction_producers
    await stopped(producer)
    assert world.rejoins == 1
    # the local state held the lost transaction's writes: gone, and recovered from the start
    assert not world.local_keys(partition)
    recovery = world.rt.app.tables.recovery
    assert TP(f"{world.rt.settings.app_id}-state-changelog", partition) not in (
        recovery.active_offsets
    )
    # a later message of the partition is not applied at all (no transaction to put it in)
    assert await _handle(world.rt, partition, second, "event-3") is None
    assert not [entry for entry in world.log if entry[0] == "send"]
    assert not world.local_keys(partition)
    # the other partitions go on
    other_batch = batch(events([f"o{i}" for i in range(200)], "A", 30), offset0=300)[other]
    assert await _handle(world.rt, other, other_batch, "event-4") is not None
    assert world.log[-1] == ("ack", "event-4")


async def test_a_fenced_commit_drops_that_transaction_and_commits_the_others(
    world: World,
) -> None:
    partition, first = one_partition("A", 10, 0)
    other = (partition + 1) % PARTS
    await _handle(world.rt, partition, first, "event-1")
    world.producers[partition].fail_commit = ProducerFenced()
    world.log.clear()
    offsets = {
        world.tid(partition): {TP(world.rt.keyed_topic, partition): 1},
        world.tid(other): {TP(world.rt.keyed_topic, other): 7},
    }
    await world.driver.commit_transactions(offsets, "group")  # does not raise
    other_name = f"p{other}"
    assert world.log[-2:] == [("commit", other_name), ("begin", other_name)]
    assert world.tid(partition) not in world.driver._transaction_producers
    await stopped(world.producers[partition])
    assert world.rejoins == 1
    assert partition in world.rt.paused and not world.local_keys(partition)


async def test_a_revocation_retires_every_keyed_transaction_and_its_local_state(
    world: World,
) -> None:
    """Faust keeps the producer of a partition assigned again; after a zombie's or a reset
    member's rejoin that producer is fenced and the local state stale. Every revocation (every
    rebalance revokes all) retires the producers and discards the state instead."""
    partition, first = one_partition("A", 10, 0)
    await _handle(world.rt, partition, first, "event-1")
    assert world.local_keys(partition)
    revoked = {TP(world.rt.keyed_topic, p) for p in range(PARTS)}
    recovery = world.rt.app.tables.recovery
    state = world.rt.app.tables["state"]
    changelog = TP(state.changelog_topic.get_topic_name(), partition)
    recovery.active_offsets[changelog] = 5
    recovery.buffers[state].append(SimpleNamespace(message=SimpleNamespace(tp=changelog)))

    await world.rt.app.on_partitions_revoked.send(revoked)

    # recovered again from the changelogs' start, nothing read before is applied
    assert changelog not in recovery.active_offsets and not recovery.buffers[state]

    assert not world.driver._transaction_producers
    for producer in world.producers.values():
        await stopped(producer)
    assert not world.local_keys(partition)
    assert world.rt.paused == set(range(PARTS))
    assert world.rejoins == 0  # the rebalance is already under way
    # assigned again: processed again (Faust begins a new producer for each)
    for p in range(PARTS):
        fresh = FakeTxnProducer(f"new{p}", world.log)
        world.driver._transaction_producers[world.tid(p)] = fresh
    await world.rt.app.on_partitions_assigned.send(revoked)
    assert not world.rt.paused
    world.log.clear()
    assert await _handle(world.rt, partition, first, "event-2") is not None
    assert ("send", f"new{partition}") in {entry[:2] for entry in world.log}


async def test_offsets_taken_before_a_producer_was_retired_are_not_committed(
    world: World,
) -> None:
    """Faust takes the offsets to commit, then the commit waits for the gate; a rebalance that
    retires the producer meanwhile aborts the messages' output, so their offsets must not be
    committed with the next producer's transaction."""
    partition, first = one_partition("A", 10, 0)
    await _handle(world.rt, partition, first, "event-1")
    tid = world.tid(partition)
    offsets = {tid: {TP(world.rt.keyed_topic, partition): 1}}
    gate = transactions.gates_of(world.rt.app)(tid)
    await gate.acquire()  # a message in progress
    commit = asyncio.ensure_future(world.driver.commit_transactions(offsets, "group"))
    await asyncio.sleep(0)
    transactions.retire_producer(world.rt.app, tid)
    world.driver._transaction_producers[tid] = FakeTxnProducer("next", world.log)
    world.log.clear()
    gate.release()
    await commit

    assert not [entry for entry in world.log if entry[0] in ("offsets", "commit")]
    assert partition not in world.rt.paused and world.rejoins == 0


async def test_a_failure_of_a_retired_transaction_does_not_pause_the_partition(
    world: World,
) -> None:
    partition, _ = one_partition("A", 10, 0)
    tid = world.tid(partition)
    epoch = transactions.gates_of(world.rt.app).epoch(tid)
    transactions.retire_producer(world.rt.app, tid)
    world.driver._transaction_producers[tid] = FakeTxnProducer("next", world.log)

    await transactions.drop_transaction(world.rt.app, tid, ProducerFenced(), epoch)

    assert tid in world.driver._transaction_producers
    assert partition not in world.rt.paused and world.rejoins == 0


async def test_a_commit_that_never_ends_is_dropped_after_its_timeout(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka waits for its sender without a bound (a stopped producer's never answers):
    such a commit held the partition's gate for good, which stopped the partition and the next
    rebalance."""
    monkeypatch.setattr(transactions, "COMMIT_TIMEOUT", 0.05)
    partition, first = one_partition("A", 10, 0)
    await _handle(world.rt, partition, first, "event-1")
    producer = world.producers[partition]
    producer.hold_commit = asyncio.Event()  # never set
    offsets = {world.tid(partition): {TP(world.rt.keyed_topic, partition): 1}}

    await asyncio.wait_for(world.driver.commit_transactions(offsets, "group"), 5)

    assert world.tid(partition) not in world.driver._transaction_producers
    assert partition in world.rt.paused and world.rejoins == 1
    assert not transactions.gates_of(world.rt.app)(world.tid(partition)).locked()


async def test_a_revocation_retires_a_producer_only_once_its_commit_is_done(
    world: World,
) -> None:
    partition, first = one_partition("A", 10, 0)
    await _handle(world.rt, partition, first, "event-1")
    producer = world.producers[partition]
    producer.hold_commit = asyncio.Event()
    offsets = {world.tid(partition): {TP(world.rt.keyed_topic, partition): 1}}
    commit = asyncio.ensure_future(world.driver.commit_transactions(offsets, "group"))
    await asyncio.sleep(0.01)
    revoke = asyncio.ensure_future(
        world.rt.app.on_partitions_revoked.send({TP(world.rt.keyed_topic, partition)})
    )
    await asyncio.sleep(0.01)
    assert world.tid(partition) in world.driver._transaction_producers and not producer.stopped

    producer.hold_commit.set()
    await asyncio.wait_for(asyncio.gather(commit, revoke), 5)

    assert ("commit", producer.name) in world.log
    assert world.tid(partition) not in world.driver._transaction_producers
    await stopped(producer)


async def test_a_flush_goes_on_when_a_transaction_is_dropped_meanwhile(world: World) -> None:
    """A rebalance flushes every transactional producer; the commit task dropping one of them
    meanwhile crashed the worker ("dictionary changed size during iteration")."""
    partition, _ = one_partition("A", 10, 0)
    tid = world.tid(partition)
    gate = transactions.gates_of(world.rt.app)(tid)

    async def drop() -> None:
        for _ in range(100):  # once the flush goes through the transactional producers
            if any(entry[0] == "flush" and entry[1] != "default" for entry in world.log):
                break
            await asyncio.sleep(0)
        async with gate:
            await transactions.drop_transaction(world.rt.app, tid, ProducerFenced(), 0)

    await asyncio.wait_for(asyncio.gather(world.driver.flush(), drop()), 5)

    assert tid not in world.driver._transaction_producers
    assert ("flush", "p0") in world.log


async def test_the_state_dump_shows_held_gates_and_paused_partitions(world: World) -> None:
    """What a stalled exactly_once worker waits on is in its state dump (app/diagnostics.py):
    a gate held by a commit, a partition paused by a lost transaction, the ids' epochs."""
    from app.diagnostics import state

    partition, first = one_partition("A", 10, 0)
    other = (partition + 1) % PARTS
    await _handle(world.rt, partition, first, "event-1")
    assert state(world.rt.app)["worker"] == {
        "paused": [],
        "lost": [],
        "writer_locked": False,
        "gates_held": [],
        "epochs": {},
    }
    world.producers[other].fail_commit = ProducerFenced()
    await world.driver.commit_transactions(
        {world.tid(other): {TP(world.rt.keyed_topic, other): 1}}, "group"
    )
    producer = world.producers[partition]
    producer.hold_commit = asyncio.Event()
    offsets = {world.tid(partition): {TP(world.rt.keyed_topic, partition): 1}}
    commit = asyncio.ensure_future(world.driver.commit_transactions(offsets, "group"))
    await asyncio.sleep(0.01)

    worker = state(world.rt.app)["worker"]
    assert worker["gates_held"] == [world.tid(partition)]
    assert worker["paused"] == worker["lost"] == [other]
    assert worker["epochs"] == {world.tid(other): 1}

    producer.hold_commit.set()
    await asyncio.wait_for(commit, 5)
    assert state(world.rt.app)["worker"]["gates_held"] == []
