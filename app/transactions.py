"""exactly_once: keep each keyed partition's Kafka transaction whole.

Under exactly_once faust-streaming 0.15 runs one transaction per keyed partition (transactional
id ``<app id>-<group>-<partition>``). The detect agent sends a message's CloudEvents and table
records into it; Faust's commit timer (every ``broker_commit_interval``) puts the acked offsets
into it, commits it and begins the next one. Two things Faust does break that:

1. **It commits in the middle of a message.** The commit timer is a task of its own and only
   takes the driver's per-send lock, so it can end a transaction between two sends of one
   message: the transaction holds part of the message's output (say its offers) but not its
   state, progress record or offset. Should the worker die before the next commit, the new
   owner reads the message again from the committed offset on the committed state and sends
   those offers a second time: a ``read_committed`` consumer sees them twice.
   :class:`TransactionGates` closes this: the agent holds the gate of the partition's
   transactional id from a message's first send until it has acked it, and the worker's
   ``commit_transactions`` (patched in by :func:`commit_transactions_between_messages`) takes
   the same gate, so a transaction always ends between two messages with the offsets of
   exactly the messages whose output it holds.
2. **It stops the worker when a commit is fenced.** ``TransactionManager.commit`` turns a
   fenced commit into ``app.crash``, and any other error of a broken transactional producer
   (``IllegalOperation``: not in a transaction) fails the commit task, which stops the worker
   too. A worker gets fenced when the group gave one of its keyed partitions to another worker
   before it noticed (a member that missed the session timeout under load, a rebalance while a
   commit runs): the whole worker stopped, and its other partitions went unprocessed until the
   group noticed. The patched commit drops only that partition's transaction (the broker
   aborts it; nothing of it is committed), removes its producer, and asks the consumer to
   rejoin the group; the rebalance gives the partition a fresh producer and transaction on
   whichever worker owns it. The detect agent drops its work on that partition meanwhile
   (:func:`lost_transaction`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.errors import IllegalOperation, KafkaError, ProducerFenced
from faust.exceptions import ProducerSendError

__all__ = [
    "LOST_TRANSACTION",
    "TransactionGates",
    "TransactionLost",
    "commit_transactions_between_messages",
    "drop_transaction",
    "gates_of",
    "has_transaction",
    "lost_transaction",
    "request_rejoin",
    "retire_producer",
    "transactional_id",
]

log = logging.getLogger("kairos.transactions")

#: Seconds to wait for a dropped transaction's producer to stop (it is fenced or broken).
PRODUCER_STOP_TIMEOUT = 10.0
#: Seconds a commit (offsets, commit, begin) of one transaction may take: aiokafka waits
#: without a bound for its sender (a stopped producer's never answers), and the commit holds
#: the partition's gate meanwhile, so a stuck commit stopped the partition's processing and
#: the next rebalance. A commit that takes longer is treated as lost.
COMMIT_TIMEOUT = 30.0


class TransactionLost(KafkaError):
    """The keyed partition's transactional producer is gone: its transaction was fenced or
    broke, and the worker removed it (a rebalance gives the partition a new one)."""


#: Errors that mean a keyed partition's transaction is lost: another worker owns the partition
#: now (it fenced this producer), Faust ended the transaction on revocation, or the worker
#: removed the partition's broken producer. Nothing of the transaction is committed.
LOST_TRANSACTION = (ProducerFenced, IllegalOperation, TransactionLost)


def lost_transaction(exc: BaseException, exactly_once: bool) -> bool:
    """Whether ``exc``, raised while sending or flushing a keyed partition's output, means
    that partition's transaction is lost (exactly_once only): its work on this worker is to be
    dropped, not treated as a failed delivery. Faust's driver wraps a Kafka error raised by a
    send in ``ProducerSendError``; the error it wraps decides."""
    if not exactly_once:
        return False
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, LOST_TRANSACTION):
            return True
        seen = seen.__cause__ if isinstance(seen, ProducerSendError) else None
    return False


def transactional_id(app: Any, keyed_topic: str, partition: int) -> str:
    """Faust's transactional id of a keyed partition: ``<app id>-<group>-<partition>``."""
    return f"{app.conf.id}-{app.assignor.group_for_topic(keyed_topic)}-{partition}"


class TransactionGates:
    """One lock per transactional id, held by whoever must not see the transaction end:
    the detect agent for a whole message (first send to ack), the commit for its end.

    ``on_lost(tid)`` (set by the worker) is called, synchronously, when the worker drops a
    transaction (:func:`drop_transaction`)."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._epochs: dict[str, int] = {}
        self.on_lost: Callable[[str], None] | None = None

    def epoch(self, tid: str) -> int:
        """How many times the worker gave up ``tid``'s producer: work begun under another
        epoch belongs to a transaction that is gone."""
        return self._epochs.get(tid, 0)

    def next_epoch(self, tid: str) -> None:
        self._epochs[tid] = self.epoch(tid) + 1

    def held(self) -> list[str]:
        """The transactional ids whose gate is held now (for the worker state dump)."""
        return sorted(tid for tid, lock in self._locks.items() if lock.locked())

    def epochs(self) -> dict[str, int]:
        """Each transactional id's epoch, for ids given up at least once."""
        return dict(sorted(self._epochs.items()))

    def __call__(self, tid: str) -> asyncio.Lock:
        lock = self._locks.get(tid)
        if lock is None:
            lock = self._locks[tid] = asyncio.Lock()
        return lock


def gates_of(app: Any) -> TransactionGates:
    """The gates of ``app`` (one set per Faust app)."""
    gates = getattr(app, "_kairos_transaction_gates", None)
    if gates is None:
        gates = TransactionGates()
        app._kairos_transaction_gates = gates
    return gates


def request_rejoin(app: Any) -> None:
    """Ask the Faust consumer's aiokafka consumer (it runs in its own thread and loop) to
    rejoin the group at its next poll."""
    try:
        thread = app.consumer._thread
        coordinator = thread._ensure_consumer()._coordinator
        thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)
    except Exception:  # the consumer is stopping or not started: nothing to rejoin
        log.debug("no consumer to rejoin the group", exc_info=True)


async def _stop_producer(producer: Any) -> None:
    try:
        await asyncio.wait_for(producer.stop(), PRODUCER_STOP_TIMEOUT)
    except Exception:
        log.debug("stopping a retired transactional producer failed", exc_info=True)


#: Background stops of retired producers (kept referenced until done).
_stopping: set[asyncio.Future[Any]] = set()


def retire_producer(app: Any, tid: str) -> None:
    """Remove ``tid``'s transactional producer and stop it in the background; the broker aborts
    its open transaction when the next producer of ``tid`` (Faust begins one for every
    assigned keyed partition) initializes, on whichever worker that is. Work begun before is
    of the old epoch (:meth:`TransactionGates.epoch`): nothing of it is committed. Synchronous;
    the caller holds the id's gate, so no commit is waiting on the producer (a stopped
    producer never answers it)."""
    gates_of(app).next_epoch(tid)
    producer = app.consumer.transactions.producer._transaction_producers.pop(tid, None)
    if producer is not None:
        stop = asyncio.ensure_future(_stop_producer(producer))
        _stopping.add(stop)
        stop.add_done_callback(_stopping.discard)


async def drop_transaction(app: Any, tid: str, reason: BaseException, epoch: int) -> None:
    """Give up the transaction ``tid`` on this worker: call the gates' ``on_lost``, retire its
    producer (:func:`retire_producer`), and ask the consumer to rejoin the group, whose
    rebalance begins a new transaction for the partition where it is assigned. ``epoch`` is
    the id's epoch when the failed work began: if the producer was retired since (a rebalance
    replaced it), the failure is of a transaction already given up and nothing is done. The
    caller holds the id's gate; the producer's driver lock is not needed (nothing is sent with
    a producer that is no longer registered)."""
    gates = gates_of(app)
    if gates.epoch(tid) != epoch:
        log.info(
            "a retired transaction failed; nothing to drop",
            extra={"transactional_id": tid, "reason": repr(reason)},
        )
        return
    log.warning(
        "keyed partition lost its transaction; its work here is dropped, rejoining the group",
        extra={"transactional_id": tid, "reason": repr(reason)},
    )
    if gates.on_lost is not None:
        gates.on_lost(tid)
    retire_producer(app, tid)
    request_rejoin(app)


def has_transaction(app: Any, tid: str) -> bool:
    """Whether this worker has a transactional producer for ``tid``."""
    return tid in app.consumer.transactions.producer._transaction_producers


async def _commit(
    producer: Any, offsets: Mapping[Any, int], group_id: str, start_new_transaction: bool
) -> None:
    await producer.send_offsets_to_transaction(offsets, group_id)
    await producer.commit_transaction()
    if start_new_transaction:
        await producer.begin_transaction()


def commit_transactions_between_messages() -> None:
    """Replace faust-streaming's ``Producer.commit_transactions`` (aiokafka driver).

    Same protocol per transactional id (send the offsets, commit, begin the next
    transaction), plus:

    - the id's gate (:class:`TransactionGates`) is held around it, so it never runs while the
      detect agent is inside a message of that partition;
    - a transaction that cannot be committed (fenced, or its producer broken) is dropped
      instead of failing the commit: its producer is stopped and removed, the consumer is asked
      to rejoin the group, and the other partitions' transactions still commit.

    ``Producer.flush`` is replaced too: it goes over a copy of the transactional producers.
    """
    from faust.transport.drivers import aiokafka as driver

    producer_cls = driver.Producer
    if getattr(producer_cls, "_kairos_gated_commit", False):
        return

    async def commit_transactions(
        self: Any,
        tid_to_offset_map: Mapping[str, Mapping[Any, int]],
        group_id: str,
        start_new_transaction: bool = True,
    ) -> None:
        gates = gates_of(self.app)
        # The offsets are of messages acked under the producers of now (no await since Faust
        # took them): a producer retired meanwhile takes its transaction, and their output,
        # with it.
        epochs = {tid: gates.epoch(tid) for tid in tid_to_offset_map}
        for tid, offsets in tid_to_offset_map.items():
            lock = self._trn_locks.get(tid)
            if lock is None:  # Faust never began it (its producer failed to start)
                log.warning(
                    "offsets not committed: the partition has no transaction",
                    extra={"transactional_id": tid},
                )
                continue
            async with gates(tid), lock:
                if gates.epoch(tid) != epochs[tid]:
                    log.info(
                        "offsets not committed: the partition's transaction was given up",
                        extra={"transactional_id": tid},
                    )
                    continue
                producer = self._transaction_producers.get(tid)
                if producer is None:
                    log.warning(
                        "offsets not committed: the partition's transaction is gone",
                        extra={"transactional_id": tid},
                    )
                    continue
                try:
                    await asyncio.wait_for(
                        _commit(producer, offsets, group_id, start_new_transaction),
                        COMMIT_TIMEOUT,
                    )
                except (KafkaError, IllegalOperation, AssertionError, TimeoutError) as exc:
                    # AssertionError: aiokafka's transaction state machine refusing a
                    # transition (a producer already in its fatal state). TimeoutError: the
                    # broker decides (the next producer of the id waits for it); the local
                    # state is discarded and recovered either way.
                    await drop_transaction(self.app, tid, exc, epochs[tid])

    async def flush(self: Any) -> None:
        # Faust's flush iterates over the live dict of transactional producers while it
        # awaits each flush; a transaction dropped meanwhile (by the commit task) crashed the
        # worker with "dictionary changed size during iteration" in a rebalance's flush.
        await self.buffer.flush()
        if self._producer is not None:
            await self._producer.flush()
        for producer in list(self._transaction_producers.values()):
            await producer.flush()

    producer_cls.commit_transactions = commit_transactions  # type: ignore[method-assign]
    producer_cls.flush = flush  # type: ignore[method-assign]
    producer_cls._kairos_gated_commit = True  # type: ignore[attr-defined]
