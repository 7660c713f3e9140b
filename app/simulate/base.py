"""What every scenario simulator shares: seeded planning, arrival order, late and malformed messages.

A scenario *plans* entities and their stories in event time (:class:`Plan`): the events,
which of them are harmless noise, the context records and, from the stories themselves,
which entities must trigger which rule. :func:`build` then turns a plan into the stream a
consumer would see (:class:`Simulation`):

1. one trailing event per entity, far enough after the last story that every window and
   absence has closed under any watermark (global, per partition or per key);
2. arrival order: every event arrives a little after its timestamp, never more than half the
   pack's ``max_out_of_orderness``, so in-bound events are never late; some noise events are
   held back until the same entity has been seen ``2 * ooo`` later: these are late under every
   watermark definition and, being noise, change no match;
3. malformed messages (invalid JSON, not an object, missing key, wrong type, non-UTF-8) are
   inserted at random positions;
4. a self-check recomputes lateness over the final order and refuses to return a stream whose
   late events differ from the injected ones.

Everything is drawn from one ``random.Random(seed)``: same arguments, same bytes.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from app.simulate.truth import GroundTruth, LateEvent, MalformedMessage

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

MALFORMED_KINDS = ("invalid_json", "not_an_object", "missing_key", "wrong_type", "non_utf8")
"""Every kind of unusable message the simulators inject, in the order they are cycled."""

Event = dict[str, Any]


@dataclass
class EventLog:
    """The events a scenario plans, numbered in order, with the ids of the noise events."""

    id_prefix: str
    events: list[Event] = field(default_factory=list)
    noise: set[str] = field(default_factory=set)
    counter: int = 0

    def add(self, kind: str, ts: int, is_noise: bool, **fields: object) -> Event:
        """Append an event ``{event_id, type, ts, **fields}`` and return it."""
        self.counter += 1
        ev: Event = {
            "event_id": f"{self.id_prefix}-{self.counter:07d}",
            "type": kind,
            "ts": ts,
            **fields,
        }
        self.events.append(ev)
        if is_noise:
            self.noise.add(ev["event_id"])
        return ev


@dataclass
class Plan:
    """A scenario's events in event time, before arrival order, lateness and malformed input."""

    events: list[Event]
    noise: set[str]
    """Ids of events that no rule can use: the only ones ever made late."""
    expected: dict[str, set[str]]
    """Rule name -> keys that must trigger it."""
    context: list[Event]
    entities: list[str]
    """Kafka keys (one per entity) in a stable order."""
    trailing: Callable[[str, int, str], Event]
    """``trailing(entity, ts, event_id)`` -> a noise event for that entity at ``ts``."""


@dataclass(frozen=True)
class ScenarioSpec:
    """Static facts about a scenario: its topics, fields, rules and time bounds."""

    name: str
    topic: str
    context_topic: str
    entity_field: str
    """Field holding the Kafka key of events and context records."""
    key_fields: tuple[str, ...]
    """Fields a 'missing key' message lacks (every rule key of the pack)."""
    rule_keys: dict[str, str]
    """Rule name -> field giving the rule's key."""
    ooo_ms: int
    """The pack's ``max_out_of_orderness``."""
    longest_window_ms: int
    events_per_entity: float
    """Average events one entity produces (to size a run from rate x duration)."""
    id_prefix: str


@dataclass(frozen=True)
class Message:
    """One message as produced: Kafka key (``None`` if absent) and value bytes."""

    key: bytes | None
    value: bytes
    event: Event | None = None
    """The decoded event for well-formed messages (``None`` for malformed ones)."""


@dataclass
class Simulation:
    """A scenario's output stream, its context records and its ground truth."""

    spec: ScenarioSpec
    messages: list[Message]
    context: list[Event]
    truth: GroundTruth
    stats: dict[str, int] = field(default_factory=dict)

    def events(self) -> Iterator[Event]:
        for m in self.messages:
            if m.event is not None:
                yield m.event


def uniform_ms(rng: random.Random, low_ms: float, high_ms: float) -> int:
    return int(rng.uniform(low_ms, high_ms))


def make_unique_times(events: list[Event], key_field: str) -> None:
    """Nudge timestamps by 1 ms so no two events of one key share a timestamp.

    Story margins are minutes wide, so a 1 ms nudge never crosses a rule boundary.
    """
    seen: dict[tuple[Any, int], bool] = {}
    for ev in sorted(events, key=lambda e: (e["ts"], e["event_id"])):
        k = ev.get(key_field)
        while (k, ev["ts"]) in seen:
            ev["ts"] += 1
        seen[(k, ev["ts"])] = True


def build(
    spec: ScenarioSpec,
    plan: Plan,
    rng: random.Random,
    *,
    seed: int,
    late_share: float = 0.01,
    malformed_share: float = 0.005,
    disorder_share: float = 0.2,
) -> Simulation:
    """Turn a plan into the stream a consumer sees, with its ground truth."""
    ooo = spec.ooo_ms
    events = list(plan.events)
    make_unique_times(events, spec.entity_field)

    # 1. Trailing events: close every window and absence for every key.
    last = max(e["ts"] for e in events) if events else 0
    end = last + spec.longest_window_ms + 2 * ooo + MINUTE
    for i, entity in enumerate(plan.entities):
        events.append(plan.trailing(entity, end + i, f"{spec.id_prefix}-end-{i:06d}"))

    # 2. Arrival: small delays (some up to ooo/2, which reorders neighbours), then late ones.
    arrival: dict[str, int] = {}
    for e in events:
        limit = ooo // 2 if rng.random() < disorder_share else 2 * SECOND
        arrival[e["event_id"]] = e["ts"] + rng.randint(0, limit)
    by_key: dict[Any, list[Event]] = {}
    for e in events:
        by_key.setdefault(e[spec.entity_field], []).append(e)
    for group in by_key.values():
        group.sort(key=lambda e: e["ts"])

    noise = [e for e in plan.events if e["event_id"] in plan.noise]
    n_late = round(late_share * len(plan.events)) if plan.events else 0
    late_ids: set[str] = set()
    for e in rng.sample(noise, min(n_late, len(noise))):
        later = [x for x in by_key[e[spec.entity_field]] if x["ts"] >= e["ts"] + 2 * ooo + SECOND]
        if not later:
            continue
        arrival[e["event_id"]] = arrival[later[0]["event_id"]] + 1
        late_ids.add(e["event_id"])

    order = sorted(events, key=lambda e: (arrival[e["event_id"]], e["event_id"]))
    messages = [
        Message(key=str(e[spec.entity_field]).encode(), value=orjson.dumps(e), event=e)
        for e in order
    ]

    # 3. Malformed messages at random positions.
    n_bad = max(len(MALFORMED_KINDS), round(malformed_share * len(messages)))
    bad = [
        _malformed(spec, rng, MALFORMED_KINDS[i % len(MALFORMED_KINDS)], i, plan.events)
        for i in range(n_bad)
    ]
    positions = sorted(rng.sample(range(len(messages) + n_bad), n_bad))
    stream: list[Message] = []
    bad_iter = iter(bad)
    malformed: list[MalformedMessage] = []
    src = iter(messages)
    pos_set = set(positions)
    for i in range(len(messages) + n_bad):
        if i in pos_set:
            kind, msg = next(bad_iter)
            stream.append(msg)
            malformed.append(
                MalformedMessage(
                    position=i, kind=kind, value_b64=base64.b64encode(msg.value).decode()
                )
            )
        else:
            stream.append(next(src))

    # 4. Self-check: lateness over the final order equals what was injected.
    observed_late, out_of_order = _lateness(stream, ooo)
    if observed_late != late_ids:
        raise RuntimeError(
            f"simulator bug in {spec.name!r}: late events {sorted(observed_late ^ late_ids)[:5]} "
            "differ from the injected ones; report the seed and arguments"
        )

    late = [
        LateEvent(event_id=e["event_id"], key=str(e[spec.entity_field]), ts=e["ts"], type=e["type"])
        for e in order
        if e["event_id"] in late_ids
    ]
    truth = GroundTruth(
        scenario=spec.name,
        seed=seed,
        topic=spec.topic,
        context_topic=spec.context_topic,
        max_out_of_orderness_ms=ooo,
        entities=len(plan.entities),
        events=len(events),
        context_records=len(plan.context),
        rule_keys=dict(spec.rule_keys),
        expected={rule: sorted(keys) for rule, keys in plan.expected.items()},
        late=late,
        malformed=malformed,
        out_of_order=out_of_order,
    )
    stats = {
        "events": len(events),
        "late": len(late),
        "out_of_order": out_of_order,
        "malformed": len(malformed),
        "context": len(plan.context),
    }
    return Simulation(spec=spec, messages=stream, context=plan.context, truth=truth, stats=stats)


def _lateness(stream: list[Message], ooo: int) -> tuple[set[str], int]:
    """Late ids (ts below max-seen minus ooo) and the count of in-bound out-of-order events."""
    max_ts = None
    late: set[str] = set()
    out_of_order = 0
    for m in stream:
        if m.event is None:
            continue
        ts = m.event["ts"]
        if max_ts is not None and ts < max_ts - ooo:
            late.add(m.event["event_id"])
        elif max_ts is not None and ts < max_ts:
            out_of_order += 1
        if max_ts is None or ts > max_ts:
            max_ts = ts
    return late, out_of_order


def _malformed(
    spec: ScenarioSpec, rng: random.Random, kind: str, n: int, events: list[Event]
) -> tuple[str, Message]:
    base = dict(rng.choice(events)) if events else {"type": "Unknown", "ts": 0}
    base["event_id"] = f"{spec.id_prefix}-bad-{n:05d}"
    key = str(base.get(spec.entity_field, "")).encode() or None
    if kind == "invalid_json":
        value = orjson.dumps(base)[:-5]
    elif kind == "not_an_object":
        value = orjson.dumps([base])
    elif kind == "missing_key":
        for f in spec.key_fields:
            base.pop(f, None)
        value = orjson.dumps(base)
        key = None
    elif kind == "wrong_type":
        base["ts"] = "soon"
        value = orjson.dumps(base)
    elif kind == "non_utf8":
        value = b"\xff\xfe" + orjson.dumps(base)[1:] + b"\xc3\x28"
    else:  # pragma: no cover - MALFORMED_KINDS is closed
        raise ValueError(f"unknown malformed kind {kind!r}")
    return kind, Message(key=key, value=value, event=None)
