"""RuleRunner: the one place where rules meet the engine (backtest and Faust runtime share it).

The caller owns the per-(rule, key) state and time; the runner routes events to rules,
extracts key / time / id, feeds the engine through its out-of-order buffer and turns matches,
timeouts and late events into :class:`Detection` objects with the action's ``data``
evaluated in CEL.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from cep import EventTimeProcessor, NFAState, StateFormatError, compile_pattern

from .compiler import to_pattern
from .detection import Detection
from .errors import EventError, Reason, RuleError
from .evaluate import RESERVED_ID, RuleEnv
from .extract import _MISSING, Extractor, content_id, context_key_of
from .model import Action, Rule
from .statebytes import StateEncoder

_STATE_MAGIC = b"KRS1"
_HEADER = struct.Struct(">4sI")


class Route(NamedTuple):
    """One rule that wants an event: its key, event time (None: processing time) and id."""

    rule: str
    key: str
    ts: int | None
    eid: Any


_new_tuple = tuple.__new__


@dataclass
class _Compiled:
    rule: Rule
    env: RuleEnv
    nfa: Any
    etp: EventTimeProcessor
    stage_order: list[str]
    extract: Extractor
    id_field: str | None  # the id field when it is one top-level field (read inline)
    event_time: bool
    state_header: bytes  # what :meth:`RuleRunner.state_to_bytes` puts before the state
    encoder: StateEncoder  # the state's bytes, reusing what did not change


class RuleRunner:
    """Compiled rules; every method takes the caller's state and time."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self._rules: dict[str, _Compiled] = {}
        self._by_topic: dict[str, list[_Compiled]] = {}
        #: rule -> ``relevant(event)``, false for an event that cannot change any state of the
        #: rule (it matches no stage's guard: see ``cep.lookup.Tables.event_guards``); None
        #: when every event may. Such an event only moves time, and can only be late: a caller
        #: may skip :meth:`process` for it (after :meth:`late`).
        self.relevance: dict[str, Callable[[dict[str, Any]], bool] | None] = {}
        #: rule -> its ``max_out_of_orderness`` (ms; 0 for a processing-time rule)
        self.out_of_orderness: dict[str, int] = {}
        for rule in rules:
            if rule.name in self._rules:
                raise RuleError(f"two rules are named {rule.name!r}; rule names are unique")
            env = RuleEnv(rule)
            nfa = compile_pattern(to_pattern(rule, env.condition))
            etp = EventTimeProcessor(
                nfa, rule.max_out_of_orderness, processing_time=rule.time is None
            )
            extract = Extractor(rule)
            c = _Compiled(
                rule,
                env,
                nfa,
                etp,
                rule.stage_names,
                extract,
                _id_field(rule),
                rule.time is not None,
                _HEADER.pack(_STATE_MAGIC, rule.version),
                StateEncoder(nfa),
            )
            self._rules[rule.name] = c
            self.relevance[rule.name] = _relevance(nfa.event_guards)
            self.out_of_orderness[rule.name] = rule.max_out_of_orderness
            for topic in rule.source:
                self._by_topic.setdefault(topic, []).append(c)
        self.stale_states = 0  # state blobs of another rule version, replaced by fresh state
        self._max_ts: dict[str, int] = {}

    # -- rules ----------------------------------------------------------------------------
    @property
    def rules(self) -> list[Rule]:
        return [c.rule for c in self._rules.values()]

    def rule(self, name: str) -> Rule:
        return self._get(name).rule

    def topics(self) -> list[str]:
        return sorted(self._by_topic)

    def cel_errors(self, name: str) -> tuple[int, str | None]:
        """How many condition evaluations failed for rule ``name``, and the last message."""
        env = self._get(name).env
        return env.errors, env.last_error

    def _get(self, name: str) -> _Compiled:
        try:
            return self._rules[name]
        except KeyError:
            raise RuleError(f"no rule named {name!r}; loaded: {', '.join(self._rules)}") from None

    # -- routing --------------------------------------------------------------------------
    def route_report(
        self, topic: str | None, event: Any
    ) -> tuple[list[Route], list[tuple[str, str]]]:
        """Rules reading ``topic`` that can use ``event``, and (rule, reason) for those that cannot.

        ``topic=None`` offers the event to every rule (the backtest without ``--topic``).
        """
        routes: list[Route] = []
        problems: list[tuple[str, str]] = []
        compiled = list(self._rules.values()) if topic is None else self._by_topic.get(topic)
        if not compiled:
            return routes, problems
        if not isinstance(event, dict):
            reason = Reason(
                f"an event is a JSON object, got {type(event).__name__}", "not-an-object"
            )
            return routes, [(c.rule.name, reason) for c in compiled]
        for c in compiled:
            try:
                key, ts, eid = c.extract.values(event)
            except EventError as exc:
                problems.append((c.rule.name, Reason(str(exc), exc.code)))
                continue
            routes.append(
                _new_tuple(Route, (c.rule.name, key, ts, eid))
            )  # Route(...), one call less
        return routes, problems

    def route(self, topic: str | None, event: Any) -> list[Route]:
        """Rules reading ``topic`` that can use ``event`` (see :meth:`route_report`)."""
        return self.route_report(topic, event)[0]

    # -- context --------------------------------------------------------------------------
    def context_topics(self) -> list[str]:
        """Topics of entity records some rule reads as ``context``."""
        return sorted(
            {t for c in self._rules.values() if c.rule.context for t in c.rule.context.source}
        )

    def context_routes(self, topic: str, record: Any) -> list[tuple[str, str]]:
        """(rule, key) pairs a context record of ``topic`` belongs to (records without the key
        field are ignored for that rule)."""
        out: list[tuple[str, str]] = []
        if not isinstance(record, dict):
            return out
        for c in self._rules.values():
            spec = c.rule.context
            if spec is None or topic not in spec.source:
                continue
            try:
                out.append((c.rule.name, context_key_of(c.rule, record)))
            except EventError:
                continue
        return out

    # -- time -----------------------------------------------------------------------------
    def observe(self, name: str, ts: int) -> int:
        """Record event time ``ts`` for rule ``name``; return its watermark.

        The watermark of a rule is the largest event time routed to it minus its
        ``max_out_of_orderness`` (one per rule, across keys, as one stream sees it).
        """
        prev = self._max_ts.get(name)
        if prev is None or ts > prev:
            self._max_ts[name] = prev = ts
        c = self._rules.get(name) or self._get(name)
        return prev - c.rule.max_out_of_orderness

    def watermark(self, name: str) -> int | None:
        """The current watermark of rule ``name`` (None before any event)."""
        prev = self._max_ts.get(name)
        return None if prev is None else prev - self._get(name).rule.max_out_of_orderness

    # -- state ----------------------------------------------------------------------------
    def new_state(self, name: str) -> NFAState:
        return self._get(name).nfa.new_state()

    def state_to_bytes(self, name: str, state: NFAState) -> bytes:
        """State bytes tagged with the rule version."""
        c = self._rules.get(name) or self._get(name)
        return c.state_header + c.encoder.encode(state)

    def table_form(self, name: str, state: NFAState) -> tuple[bytes | None, int]:
        """What a state table keeps of ``state``, and its partial matches: ``(None, 0)`` when
        the state is idle (nothing but the start run: no partial match, nothing held back,
        pending or buffered; it behaves exactly like a fresh state), else
        ``(state_to_bytes(name, state), state.partial_match_count)``."""
        if state.is_idle:
            return None, 0
        return self.state_to_bytes(name, state), state.partial_match_count

    def state_from_bytes(self, name: str, blob: bytes | None) -> NFAState:
        """State from :meth:`state_to_bytes`; a blob of another version (or none) gives fresh state."""
        c = self._get(name)
        if not blob:
            return c.nfa.new_state()
        if len(blob) < _HEADER.size:
            self.stale_states += 1
            return c.nfa.new_state()
        magic, version = _HEADER.unpack_from(blob)
        if magic != _STATE_MAGIC or version != c.rule.version:
            self.stale_states += 1
            return c.nfa.new_state()
        try:
            return c.nfa.state_from_bytes(blob[_HEADER.size :])
        except StateFormatError:
            self.stale_states += 1
            return c.nfa.new_state()

    def describe_state(self, name: str, state: NFAState) -> list[dict[str, Any]]:
        """Partial matches of a key for display: one dict per run, oldest first, with
        ``stage``, ``waiting_for``, ``events`` ({stage: [event ids]}), ``started_at``,
        ``last_at``, ``expires_at``, ``held``; plus ``buffered`` (out-of-order events waiting)."""
        c = self._get(name)
        runs = c.nfa.describe(state)
        for run in runs:
            run["events"] = {
                stage: [self._eid(c, e) for e in evs] for stage, evs in run["events"].items()
            }
            run["buffered"] = len(state.early)
        return runs

    def next_deadline(self, name: str, state: NFAState) -> float | None:
        """Earliest watermark (or processing time) at which :meth:`advance` can emit."""
        c = self._rules.get(name) or self._get(name)
        return c.etp.next_deadline(state)

    def next_deadline_of(self, name: str) -> Callable[[NFAState], float | None]:
        """:meth:`next_deadline` of rule ``name``, as a function of the state alone."""
        return (self._rules.get(name) or self._get(name)).etp.next_deadline

    # -- processing -----------------------------------------------------------------------
    def process(
        self,
        name: str,
        state: NFAState,
        key: Any,
        event: dict[str, Any],
        ts: int,
        context: dict[str, Any] | None = None,
        watermark: int | None = None,
        eid: Any = None,
    ) -> list[Detection]:
        """Feed one event of ``key`` to rule ``name``; ``state`` is mutated in place.

        ``ts`` is the event time from :meth:`route` (or, for a processing-time rule, the
        caller's clock). ``watermark`` defaults to the key's own (max time seen minus the
        rule's out-of-orderness); pass :meth:`observe`'s value for a per-rule watermark.
        ``eid`` names the event when the rule has no ``id`` field (default: a content hash).
        """
        c = self._rules.get(name) or self._get(name)
        own, eid = self._event_id(c, event, eid)
        stored = event if own else {**event, RESERVED_ID: eid}
        if watermark is not None and ts < watermark and c.event_time:
            return [self._late(c, key, eid, ts, watermark)]
        c.env.bind(key, context)
        matches: list[Any] = []
        timeouts: list[Any] = []
        late = c.etp.feed(state, stored, ts, watermark, matches, timeouts)
        found = self._detections(c, key, context, matches, timeouts) if matches or timeouts else []
        if late:
            found.append(self._late(c, key, eid, ts, state.watermark))
        return found

    def late(
        self, name: str, key: Any, event: dict[str, Any], ts: int, watermark: int, eid: Any = None
    ) -> Detection | None:
        """The late detection :meth:`process` returns for an event time ``ts`` behind
        ``watermark``, without a state (None when the event is not late, or the rule runs
        in processing time)."""
        c = self._rules.get(name) or self._get(name)
        if ts >= watermark or not c.event_time:
            return None
        return self._late(c, key, self._event_id(c, event, eid)[1], ts, watermark)

    @staticmethod
    def _event_id(c: _Compiled, event: dict[str, Any], eid: Any) -> tuple[bool, Any]:
        """Whether the event has an id of its own, and its id (else ``eid``, or its content
        hash: the engine then stores the event with it under ``RESERVED_ID``)."""
        id_field = c.id_field
        own = event.get(id_field, _MISSING) if id_field is not None else c.extract.id(event)
        if own is None or own is _MISSING:
            return False, content_id(event) if eid is None else eid
        return True, own

    def advance(
        self,
        name: str,
        state: NFAState,
        key: Any,
        watermark: int,
        context: dict[str, Any] | None = None,
    ) -> list[Detection]:
        """Move time for ``key`` to ``watermark``: buffered events, timeouts, absence matches."""
        c = self._rules.get(name) or self._get(name)
        c.env.bind(key, context)
        matches: list[Any] = []
        timeouts: list[Any] = []
        c.etp.release(state, watermark, matches, timeouts)
        if matches or timeouts:
            return self._detections(c, key, context, matches, timeouts)
        return []

    # -- detections -----------------------------------------------------------------------
    def _late(self, c: _Compiled, key: Any, eid: Any, ts: int, watermark: Any) -> Detection:
        return Detection(
            rule=c.rule.name,
            version=c.rule.version,
            key=key,
            kind="late",
            stages={},
            start=ts,
            end=ts,
            data={"id": eid, "watermark": _int(watermark)},
        )

    def _detections(
        self,
        c: _Compiled,
        key: Any,
        context: dict[str, Any] | None,
        matches: list[Any],
        timeouts: list[Any],
    ) -> list[Detection]:
        found: list[Detection] = []
        rule = c.rule
        if rule.emit is not None:
            for m in matches:
                found.append(
                    self._detection(c, "match", m.events, m.start, m.end, key, context, rule.emit)
                )
        if rule.on_timeout is not None:
            for t in timeouts:
                start = t.start if t.start is not None and t.start >= 0 else None
                found.append(
                    self._detection(
                        c, "timeout", t.events, start, t.timestamp, key, context, rule.on_timeout
                    )
                )
        return found

    def _detection(
        self,
        c: _Compiled,
        kind: str,
        events: dict[str, list[Any]],
        start: Any,
        end: Any,
        key: Any,
        context: dict[str, Any] | None,
        action: Action,
    ) -> Detection:
        rule = c.rule
        stages = {}
        last = None
        for name in c.stage_order:
            evs = events.get(name)
            if evs:
                stages[name] = [self._eid(c, e) for e in evs]
                last = evs[-1]
        data, errors = c.env.data(action.compiled, events, key, context, last)
        return Detection(
            rule=rule.name,
            version=rule.version,
            key=key,
            kind=kind,
            stages=stages,
            start=_int(start),
            end=_int(end),
            data=data,
            action=action.kind,
            topic=action.topic,
            errors=errors,
        )

    @staticmethod
    def _eid(c: _Compiled, event: dict[str, Any]) -> Any:
        if RESERVED_ID in event:
            return event[RESERVED_ID]
        return c.extract.id(event)


def _id_field(rule: Rule) -> str | None:
    path = rule.id
    return path[0] if path is not None and len(path) == 1 else None


def _int(value: Any) -> int | None:
    if value is None or value in (float("inf"), float("-inf")):
        return None
    return int(value)


def _relevance(
    guards: frozenset[tuple[str, Any]] | None,
) -> Callable[[dict[str, Any]], bool] | None:
    """``relevant(event)``: the event matches one of ``guards`` (stage guards are
    ``event.F == 'string'``, compared as the conditions compare them); None for None."""
    if guards is None:
        return None
    by_field: dict[str, frozenset[Any]] = {}
    for field, value in guards:
        by_field[field] = by_field.get(field, frozenset()) | {value}
    pairs = tuple(by_field.items())

    def relevant(event: dict[str, Any]) -> bool:
        for field, values in pairs:
            v = event.get(field)
            if type(v) is str and v in values:
                return True
        return False

    return relevant
