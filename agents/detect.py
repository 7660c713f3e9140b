"""Detect: run every rule over the keyed-topic batches of one partition.

:class:`Detector` holds no Kafka code: the Faust agent (see :mod:`app.faust_app`) hands it each
keyed-topic message with its partition, sends the detections it returns, and then writes the
touched keys back to the state table, once per key per message.

Per partition it keeps:

- a cache of decoded key states (loaded from the table on first use),
- the per-rule clocks. Event time: the ingest carries, with every event and tick, the max event
  time routed to the rule *per source partition*; the rule's watermark is the minimum of those
  maxima over the source partitions that are not idle, minus the rule's max out-of-orderness.
  A source partition is idle, and stops holding the watermark back, when it had no event for
  ``idle_ms`` of wall-clock time **and** the ingest that owns it said, in a tick of the last
  ``caught_ms``, that it has read it to the end. A partition whose ingest stopped or crashed is
  therefore never idle: its events wait until a worker reads it again instead of arriving
  late (Flink's sources mark themselves idle the same way). When all are idle the maximum is
  used, so absences still fire when the stream pauses. Once every partition of the rule's
  source topics has been heard from, the watermark never goes back: when an idle partition
  has events again, those older than it are late (as in Flink, whose watermark does not
  regress either). With one source partition this is
  exactly the backtest's per-rule watermark; with several, a consumer that reads one
  partition ahead of another does not make the other's events late. Processing time: the
  ingest's wall clock, from events and ticks.
- the deadline heaps (:mod:`agents.deadlines`), rebuilt from the table on first use after an
  assignment, so a tick advances only the keys that are due,
- the source offsets already applied (``hw``): a batch re-sent by an ingest that crashed before
  committing is recognised and skipped, so the state sees each source record once.

The clocks and ``hw`` live in the table too, under the reserved key ``\\x00p<partition>``
(written to that partition's changelog like every other key).

Writes are coalesced: :meth:`Detector.handle` only marks the keys it touched as dirty;
:meth:`Detector.flush` serialises each dirty key once, plus the progress record, however many
messages touched it since the previous flush. The caller decides when to flush (see
:mod:`agents.writer`) and must not let the keyed topic's offsets be committed past a message
whose state has not been flushed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from agents.deadlines import RuleDeadlines
from agents.rulebook import RuleBook
from agents.wire import Batch, Tick, partition_for
from tables.codec import KeyState, StateCodecError, decode_key_state, encode_key_state

__all__ = ["Detector", "Outcome", "progress_key"]

log = logging.getLogger("kairos.detect")

RESERVED_PREFIX = b"\x00"


def progress_key(partition: int) -> bytes:
    return b"\x00p%d" % partition


@dataclass
class _Working:
    """A key's state while a partition is assigned: raw blobs plus decoded rule states."""

    key: str
    stored: KeyState
    live: dict[str, tuple[int, Any]] = field(default_factory=dict)
    in_table: bool = False
    partials: dict[str, int] = field(default_factory=dict)  # rule -> partial matches, as counted
    changed: set[str] = field(default_factory=set)  # rules whose live state changed since flush


@dataclass
class _Partition:
    number: int
    cache: dict[str, _Working] = field(default_factory=dict)
    deadlines: RuleDeadlines = field(default_factory=RuleDeadlines)
    hw: dict[str, int] = field(default_factory=dict)
    src_max: dict[str, dict[str, int]] = field(default_factory=dict)  # rule -> source -> ts
    src_last: dict[str, int] = field(default_factory=dict)  # source -> wall ms of last event
    # source -> wall ms of the latest tick whose ingest had read that source to the end
    src_caught: dict[str, int] = field(default_factory=dict)
    # rule -> the highest event-time clock (watermark + bound) it has had: it never goes back
    # once every partition of the rule's source topics has been heard from (_hold)
    wm_floor: dict[str, int] = field(default_factory=dict)
    # rule -> (version, source partitions heard from, whether that is all of them) when checked
    floor_check: dict[str, tuple[int, int, bool]] = field(default_factory=dict)
    now: int = 0
    rebuilt: bool = False
    dirty: dict[str, _Working] = field(default_factory=dict)  # touched since the last flush
    progress_dirty: bool = False
    partials: dict[str, int] = field(default_factory=dict)  # rule -> partial matches


@dataclass
class Outcome:
    """What one message produced: detections to send (its keys are now dirty)."""

    partition: int
    detections: list[Any] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    failed: list[tuple[list[Any], str, str]] = field(default_factory=list)  # (item, source, error)
    replaced_states: int = 0
    rule_events: dict[str, int] = field(default_factory=dict)
    oldest_ingest_ms: int = 0


class Detector:
    """Applies keyed-topic messages to the rule states of the keys of each partition."""

    CACHE_MAX = 100_000
    #: Events applied between two yields of :meth:`steps` (the caller lets other tasks run).
    YIELD_EVERY = 64

    def __init__(
        self,
        book: RuleBook,
        table: MutableMapping[bytes, bytes],
        partitions: int,
        on_state_error: Callable[[str, Exception], None] | None = None,
        idle_ms: int = 5_000,
        caught_ms: int = 3_000,
        source_partitions: Callable[[str], int | None] | None = None,
    ) -> None:
        self.idle_ms = idle_ms
        #: partitions of a source topic (None: not known yet); without it a watermark may go back
        self.source_partitions = source_partitions
        self.caught_ms = caught_ms
        self.book = book
        self.table = table
        self.partitions = partitions
        self._parts: dict[int, _Partition] = {}
        self._on_state_error = on_state_error

    # -- assignment ---------------------------------------------------------------------

    def forget(self, partition: int) -> None:
        """Drop what is cached for ``partition`` (revoked, or about to be re-read).

        Changes not flushed are dropped with it: the caller flushes first, or lets the
        keyed-topic messages since the last flush be read again."""
        self._parts.pop(partition, None)

    def forget_all(self) -> None:
        self._parts.clear()

    def cached_partitions(self) -> list[int]:
        """Partitions with cached state."""
        return list(self._parts)

    def _partition(self, number: int) -> _Partition:
        part = self._parts.get(number)
        if part is None:
            part = self._parts[number] = _Partition(number)
            raw = self.table.get(progress_key(number))
            if raw:
                saved = orjson.loads(raw)
                part.hw = saved.get("hw", {})
                part.src_max = saved.get("ts", {})
                part.src_last = saved.get("last", {})
                part.src_caught = saved.get("caught", {})
                part.wm_floor = saved.get("wm", {})
                part.now = saved.get("now", 0)
        if not part.rebuilt:
            self._rebuild_deadlines(part)
        return part

    def _rebuild_deadlines(self, part: _Partition) -> None:
        """Scan the table once for this partition's keys and schedule their deadlines."""
        part.rebuilt = True
        runner = self.book.runner
        for raw_key, raw_value in list(self.table.items()):
            if raw_key.startswith(RESERVED_PREFIX) or raw_value is None:
                continue
            key = raw_key.decode()
            if partition_for(key, self.partitions) != part.number:
                continue
            working = self._decode(key, raw_value)
            if working is None:
                continue
            for name in working.stored.rules:
                rule = self.book.rules.get(name)
                if rule is None:
                    continue
                state = self._state(working, rule, None)
                part.deadlines.schedule(name, key, runner.next_deadline(name, state))
                self._count_partials(part, working, name, state)
            if len(part.cache) < self.CACHE_MAX:
                part.cache[key] = working

    # -- keys ---------------------------------------------------------------------------

    def _decode(self, key: str, raw: bytes) -> _Working | None:
        try:
            return _Working(key, decode_key_state(raw), in_table=True)
        except StateCodecError as exc:
            log.error("unreadable key state dropped", extra={"key": key, "error": str(exc)})
            if self._on_state_error:
                self._on_state_error(key, exc)
            return None

    def _working(self, part: _Partition, key: str) -> _Working:
        working = part.cache.get(key)
        if working is None:
            working = part.dirty.get(key)
            if working is None:
                raw = self.table.get(key.encode())
                working = self._decode(key, raw) if raw else None
                if working is None:
                    working = _Working(key, KeyState())
            if len(part.cache) >= self.CACHE_MAX:
                part.cache = dict(part.dirty)  # not flushed yet: the table is behind them
            part.cache[key] = working
        return working

    def _state(self, working: _Working, rule: Any, outcome: Outcome | None) -> Any:
        """The decoded state of ``rule`` for this key; fresh when absent or of another version."""
        name = rule.name
        live = working.live.get(name)
        if live is not None and live[0] == rule.version:
            return live[1]
        runner = self.book.runner
        stored = working.stored.rules.get(name)
        if stored is not None and stored[0] == rule.version and live is None:
            state = runner.state_from_bytes(name, stored[1])
        else:
            replaced = (stored is not None and stored[0] != rule.version) or live is not None
            if replaced and outcome is not None:
                outcome.replaced_states += 1
            state = runner.new_state(name)
            working.changed.add(name)
        working.live[name] = (rule.version, state)
        return state

    # -- messages -----------------------------------------------------------------------

    def handle(self, partition: int, message: Batch | Tick) -> Outcome:
        """Apply one keyed-topic message; its keys become dirty (see :meth:`flush`)."""
        outcome = Outcome(partition)
        for _ in self.steps(partition, message, outcome):
            pass
        return outcome

    def steps(self, partition: int, message: Batch | Tick, outcome: Outcome) -> Iterator[None]:
        """:meth:`handle` as a generator that yields every :attr:`YIELD_EVERY` events, so an
        async caller can let other tasks (web lookups) run inside a long batch. The partition
        must not be handled or flushed by anyone else until the generator is exhausted."""
        part = self._partition(partition)
        touched: dict[str, _Working] = {}
        if isinstance(message, Tick):
            part.now = max(part.now, message.now)
            for source, ms in message.last.items():
                if ms > part.src_last.get(source, ms - 1):
                    part.src_last[source] = ms
            for source in message.caught:
                if message.now > part.src_caught.get(source, message.now - 1):
                    part.src_caught[source] = message.now
            for name, per_src in message.watermarks.items():
                mine = part.src_max.setdefault(name, {})
                for source, ts in per_src.items():
                    if ts > mine.get(source, ts - 1):
                        mine[source] = ts
        else:
            yield from self._apply_batch(part, message, outcome, touched)
        self._advance(part, outcome, touched)
        part.dirty.update(touched)
        if touched or outcome.events or outcome.duplicates:
            part.progress_dirty = True

    def _apply_batch(
        self, part: _Partition, batch: Batch, outcome: Outcome, touched: dict[str, _Working]
    ) -> Iterator[None]:
        book, runner = self.book, self.book.runner
        rules = book.rules
        hw, src_max, src_last, floors = part.hw, part.src_max, part.src_last, part.wm_floor
        floor_check = part.floor_check
        sources = batch.sources
        rule_events = outcome.rule_events
        last: dict[str, int] = {}
        scheduled: dict[str, dict[str, Any]] = {}  # rule -> key -> state: deadlines at the end
        # rule -> its source partitions that hold the watermark (not idle); valid while the
        # partition's wall clock, the sources' last-event times and the rule's sources stay
        live_sources: dict[str, list[str] | None] = {}
        process = runner.process
        relevance = runner.relevance
        every = self.YIELD_EVERY
        countdown = every
        for item in batch.context:
            key, src_i, offset, fields = item
            source = sources[src_i]
            if offset <= hw.get(source, -1):
                outcome.duplicates += 1
                continue
            last[source] = offset
            working = self._working(part, key)
            working.stored.context.update(fields)
            touched[key] = working
        cache = part.cache  # _working's first lookup, inlined below
        for item in batch.events:
            key, src_i, offset, ingest_ms, routes, event = item
            source = sources[src_i]
            if offset <= hw.get(source, -1):
                outcome.duplicates += 1
                continue
            last[source] = offset
            outcome.events += 1
            countdown -= 1
            if not countdown:
                countdown = every
                yield
            if ingest_ms > part.now:
                part.now = ingest_ms
                live_sources.clear()
            if src_last.get(source) != ingest_ms:
                src_last[source] = ingest_ms
                live_sources.clear()
            if not outcome.oldest_ingest_ms or ingest_ms < outcome.oldest_ingest_ms:
                outcome.oldest_ingest_ms = ingest_ms
            working: Any = None
            for name, ts, eid, seen in routes:
                rule = rules.get(name)
                if rule is None:
                    continue  # deleted since the ingest routed it
                if ts is None:
                    ts = wm = ingest_ms
                else:
                    per_src = src_max.get(name)
                    if per_src is None:
                        per_src = src_max[name] = {}
                    held = per_src.get(source)
                    if held is None:
                        per_src[source] = seen
                        live_sources.pop(name, None)
                    elif seen > held:
                        per_src[source] = seen
                    if len(per_src) == 1:
                        base = seen if held is None or seen > held else held
                    else:
                        if name in live_sources:
                            live = live_sources[name]
                        else:
                            live = live_sources[name] = self._live_sources(part, per_src)
                        # _watermark_base, inlined
                        base = (
                            max(per_src.values())
                            if live is None
                            else min(map(per_src.__getitem__, live))
                        )
                    check = floor_check.get(name)  # _hold, inlined
                    if check is None or check[0] != rule.version or check[1] != len(per_src):
                        check = self._check_floor(part, name, rule, per_src)
                    if check[2]:
                        floor = floors.get(name)
                        if floor is None or base > floor:
                            floors[name] = base
                        elif base < floor:
                            base = floor
                    wm = base - rule.max_out_of_orderness
                rule_events[name] = rule_events.get(name, 0) + 1
                relevant = relevance.get(name)
                if relevant is not None and not relevant(event):
                    # it changes no state of the rule (cep.lookup.Tables.event_guards): only
                    # whether it is late is left to tell; the key's state is not even loaded
                    if ts < wm and rule.time is not None:
                        late = runner.late(name, key, event, ts, wm, eid)
                        if late is not None:
                            outcome.detections.append(late)
                    continue
                if working is None:
                    working = cache.get(key)
                    if working is None:
                        working = self._working(part, key)
                        cache = part.cache  # a full cache starts again
                    touched[key] = working
                    context = working.stored.context
                    live_states = working.live
                state = live_states.get(name)  # _state's common case, inlined
                if state is not None and state[0] == rule.version:
                    state = state[1]
                else:
                    state = self._state(working, rule, outcome)
                working.changed.add(name)
                try:
                    found = process(
                        name, state, key, event, ts, context=context, watermark=wm, eid=eid
                    )
                except Exception as exc:
                    log.exception("rule failed on an event", extra={"rule": name, "key": key})
                    outcome.failed.append((item, source, f"rule {name}: {exc}"))
                    continue
                if found:
                    outcome.detections.extend(found)
                states = scheduled.get(name)
                if states is None:
                    states = scheduled[name] = {}
                states[key] = state
        for name, states in scheduled.items():
            part.deadlines.schedule_each(name, states, runner.next_deadline_of(name))
        for source, offset in last.items():
            hw[source] = offset

    def _watermark(self, part: _Partition, name: str, rule: Any) -> int | None:
        """Min over the non-idle source partitions of their max event time, minus the bound."""
        per_src = part.src_max.get(name)
        if not per_src:
            return None
        live = self._live_sources(part, per_src)
        return self._hold(part, name, rule, per_src, _watermark_base(per_src, live))

    def _hold(
        self, part: _Partition, name: str, rule: Any, per_src: dict[str, int], base: int
    ) -> int:
        """The rule's watermark from ``base``, its event-time clock (the watermark before the
        out-of-orderness bound): once the rule's source partitions were all heard from
        (:meth:`_check_floor`), the highest clock so far if that is higher, which it then
        remembers.

        A watermark never goes back, as in Flink: when an idle source partition has events
        again, its older event times would lower the minimum, but such events are late
        instead. Otherwise a key whose state saw a later event (its own watermark moved on)
        would call an event late that another key, or a state not loaded for an event no step
        of the rule can use, would still take. The bound is applied after, so a new version of
        the rule with another bound gets its own watermark at once.
        """
        check = part.floor_check.get(name)
        if check is None or check[0] != rule.version or check[1] != len(per_src):
            check = self._check_floor(part, name, rule, per_src)
        if check[2]:
            floor = part.wm_floor.get(name)
            if floor is None or base > floor:
                part.wm_floor[name] = base
            else:
                base = floor
        return base - rule.max_out_of_orderness

    def _check_floor(
        self, part: _Partition, name: str, rule: Any, per_src: dict[str, int]
    ) -> tuple[int, int, bool]:
        """Whether the rule's watermark on this partition is held from going back: once every
        partition of every source topic of the rule has been heard from (an event or a tick).

        Before that the watermark is the minimum over fewer partitions than there are, and a
        partition heard from for the first time may lower it: its events must not be late
        for that (after a restart detect hears from the partitions one ingest at a time).
        A partition count not known yet (the ingest's metadata) is checked again next time.
        """
        held = self.source_partitions is not None
        for topic in rule.source if held else ():
            n = self.source_partitions(topic)  # type: ignore[misc]
            if n is None:
                return (rule.version, -1, False)  # not cached: asked again next time
            held = all(f"{topic}:{p}" in per_src for p in range(n))
            if not held:
                break
        check = part.floor_check[name] = (rule.version, len(per_src), held)
        return check

    def _live_sources(self, part: _Partition, per_src: dict[str, int]) -> list[str] | None:
        """The source partitions that hold a rule's watermark: all but the idle ones (no event
        in the last ``idle_ms`` of the partition's wall clock, and read to the end by their
        ingest as of a tick in the last ``caught_ms``); None when every one is idle (then the
        maximum is used, so absences still fire when the stream pauses)."""
        now, last, idle = part.now, part.src_last, self.idle_ms
        caught, fresh = part.src_caught, self.caught_ms
        live = [
            src
            for src in per_src
            if now - last.get(src, now) <= idle or now - caught.get(src, now - fresh - 1) > fresh
        ]
        return live or None

    def _advance(self, part: _Partition, outcome: Outcome, touched: dict[str, _Working]) -> None:
        """Advance every rule's clock; only keys whose deadline passed are touched."""
        runner = self.book.runner
        for name in part.deadlines.rules():
            rule = self.book.rules.get(name)
            if rule is None:
                continue
            if rule.time is None:
                now = part.now
            else:
                wm = self._watermark(part, name, rule)
                if wm is None:
                    continue
                now = wm
            for key in part.deadlines.pop_due(name, now):
                working = self._working(part, key)
                state = self._state(working, rule, outcome)
                try:
                    found = runner.advance(name, state, key, now, context=working.stored.context)
                except Exception:
                    log.exception("rule failed advancing time", extra={"rule": name, "key": key})
                    continue
                if found:
                    outcome.detections.extend(found)
                part.deadlines.schedule(name, key, runner.next_deadline(name, state))
                working.changed.add(name)
                touched[key] = working

    def _count_partials(self, part: _Partition, working: _Working, name: str, state: Any) -> None:
        count = getattr(state, "partial_match_count", 0)
        before = working.partials.get(name, 0)
        if count != before:
            part.partials[name] = part.partials.get(name, 0) + count - before
            working.partials[name] = count

    def flush(self, partition: int, limit: int | None = None) -> dict[bytes, bytes | None]:
        """The writes that persist ``partition``'s changes since the last flush: one value per
        dirty key (None: delete) and, last, the partition's progress record.

        ``limit``: at most that many keys (the oldest dirty ones); the others stay dirty, and
        the progress record comes with the call that leaves no key dirty.

        A rule state that is idle (nothing but the start run: no partial match, nothing
        buffered or pending) is not stored, it behaves exactly like a fresh state; a key left
        with nothing is deleted (or never written)."""
        part = self._parts.get(partition)
        writes: dict[bytes, bytes | None] = {}
        if part is None:
            return writes
        table_form = self.book.runner.table_form
        rules = self.book.rules
        totals = part.partials
        dirty = part.dirty
        partial = limit is not None and len(dirty) > limit
        chunk: Any = (
            [(key, dirty.pop(key)) for key in list(islice(dirty, limit))]
            if partial
            else dirty.items()
        )
        for key, working in chunk:
            stored = working.stored
            changed = working.changed
            live = working.live
            counts = working.partials
            for name, (version, state) in list(live.items()):
                if name not in rules:
                    self._count_partials(part, working, name, None)
                    del live[name]
                    stored.rules.pop(name, None)
                    continue
                if name not in changed:
                    continue  # as stored at the last flush (or as loaded)
                blob, count = table_form(name, state)  # None: idle, stored as a fresh state
                before = counts.get(name, 0)
                if count != before:  # _count_partials, inlined
                    totals[name] = totals.get(name, 0) + count - before
                    counts[name] = count
                if blob is None:
                    del live[name]
                    stored.rules.pop(name, None)
                else:
                    stored.rules[name] = (version, blob)
            changed.clear()
            if stored:
                writes[key.encode()] = encode_key_state(stored)
                working.in_table = True
            elif working.in_table:
                writes[key.encode()] = None
                working.in_table = False
        if partial:
            return writes  # more keys to come: the progress record goes last
        dirty.clear()
        if part.progress_dirty:
            part.progress_dirty = False
            writes[progress_key(part.number)] = orjson.dumps(
                {
                    "hw": part.hw,
                    "ts": part.src_max,
                    "last": part.src_last,
                    "caught": part.src_caught,
                    "wm": part.wm_floor,
                    "now": part.now,
                }
            )
        return writes

    def dirty(self, partition: int) -> int:
        """Keys of ``partition`` changed since its last flush."""
        part = self._parts.get(partition)
        return len(part.dirty) if part else 0

    def partial_matches(self) -> dict[str, int]:
        """Partial matches per rule over the cached partitions, as of each key's last flush."""
        total: dict[str, int] = {}
        for part in self._parts.values():
            for name, n in part.partials.items():
                total[name] = total.get(name, 0) + n
        return total

    # -- web view -----------------------------------------------------------------------

    def stored_state(self, key: str) -> KeyState | None:
        """The key's current state for the web view: from memory when it changed since the
        last flush, else as last written to the local table."""
        part = self._parts.get(partition_for(key, self.partitions))
        working = part.dirty.get(key) if part else None
        if working is not None:
            runner, rules = self.book.runner, self.book.rules
            snapshot = KeyState(dict(working.stored.rules), dict(working.stored.context))
            for name, (version, state) in working.live.items():
                if name not in rules or getattr(state, "is_idle", False):
                    snapshot.rules.pop(name, None)
                else:
                    snapshot.rules[name] = (version, runner.state_to_bytes(name, state))
            return snapshot if snapshot else None
        raw = self.table.get(key.encode())
        if not raw:
            return None
        try:
            return decode_key_state(raw)
        except StateCodecError:
            return None

    def deadline_count(self) -> int:
        return sum(len(p.deadlines) for p in self._parts.values())


def _watermark_base(per_src: dict[str, int], live: list[str] | None) -> int:
    """Min of the live source partitions' max event times; the max of all when none is live."""
    return max(per_src.values()) if live is None else min([per_src[src] for src in live])
