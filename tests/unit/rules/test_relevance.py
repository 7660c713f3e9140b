"""``RuleRunner.relevance`` (which events can change a rule's state) and ``RuleRunner.late``.

The predicate of each scenario rule is its stages' guards (``event.F == 'v'`` conjuncts),
None when an event matching none may still change a state; leaving out the events it says
are not relevant (telling only whether they are late) must give the detections of feeding
every event; ``late`` is the late detection ``process`` returns, without a state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cep.rules import RuleRunner
from cep.rules.loader import load_rules
from tests.unit.rules.helpers import rule

SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios"

#: rule -> (field, value) pairs of which a relevant event matches one; None: every event
SCENARIO_GUARDS: dict[str, set[tuple[str, str]] | None] = {
    "lounge-voucher": {("type", "FlightDelayed")},
    "rebooking-offer": {("type", "FlightDelayed"), ("type", "ConnectionAtRisk")},
    "service-desk-alert": {
        ("type", "FlightDelayed"),
        ("type", "RebookingSearch"),
        ("type", "Booking"),
    },
    # three views of a category then no cart, skip_past_last_event: a run started at the
    # second view is pruned when the absence completes, or times out when time moves past
    # both at once (cep.lookup.Tables._time_steps_matter): every event may matter
    "browse-recommendation": None,
    "cart-abandonment": {("type", "AddedToCart"), ("type", "OrderPlaced")},
    "loyalty-reward": {("type", "OrderPlaced")},
    "reorder-alert": {
        ("type", "ShipmentDelayed"),
        ("type", "PurchaseOrder"),
        ("type", "StockLevel"),
    },
    "supplier-alert": {("type", "ShipmentDelayed")},
}


def _scenario_rules() -> list[Any]:
    return load_rules(sorted(SCENARIOS.glob("*/rules/*.yaml")))


def test_every_scenario_rule_is_listed() -> None:
    assert sorted(r.name for r in _scenario_rules()) == sorted(SCENARIO_GUARDS)


@pytest.mark.parametrize("name", sorted(SCENARIO_GUARDS))
def test_scenario_rule_relevance_is_its_stage_guards(name: str) -> None:
    runner = RuleRunner(_scenario_rules())
    want = SCENARIO_GUARDS[name]
    relevant = runner.relevance[name]
    nfa = runner._rules[name].nfa
    if want is None:
        assert relevant is None and nfa.event_guards is None
        return
    assert nfa.event_guards == frozenset(want)
    assert relevant is not None
    for field, value in want:
        assert relevant({field: value, "other": 1})
        assert not relevant({field: value + "x"})
        assert not relevant({field: value.lower()})
    for other in ({}, {"type": None}, {"type": 1}, {"type": ["FlightDelayed"]}, {"kind": "x"}):
        assert not relevant(other)
    # a guard's value under another field is not a match
    field, value = next(iter(want))
    assert not relevant({"not_" + field: value})


def test_a_predicate_over_several_fields() -> None:
    r = rule("""\
        name: two-fields
        source: events
        key: k
        stages:
          - name: a
            where: event.type == 'A'
          - name: b
            after: relaxed
            where: "'B' == event.kind && event.n > 1"
        emit: {kind: alert, topic: alerts}
        """)
    relevant = RuleRunner([r]).relevance["two-fields"]
    assert relevant is not None
    assert relevant({"type": "A"}) and relevant({"kind": "B", "n": 0})
    assert relevant({"type": "Z", "kind": "B"})
    assert not relevant({"type": "B", "kind": "A"})
    assert not relevant({"type": {"A": 1}, "kind": ("B",)})


def _one_stage_after_a(where: str, after: str = "relaxed") -> Any:
    return rule(f"""\
        name: r
        source: events
        key: k
        stages:
          - name: a
            where: event.type == 'A'
          - name: b
            after: {after}
            where: {where}
        emit: {{kind: alert, topic: alerts}}
        """)


@pytest.mark.parametrize(
    "where",
    [
        "event.type == 1",  # not a string: no guard
        "event.type == true",
        "event.detail.type == 'B'",  # nested field: no guard
        "event.type == 'B' || event.type == 'C'",  # an alternative: no guard
        "event.n > 1",
        "event.type != 'B'",
        "(event.type == 'B') ? true : false",
    ],
)
def test_a_stage_without_a_guard_makes_every_event_relevant(where: str) -> None:
    r = _one_stage_after_a(f'"{where}"')
    assert RuleRunner([r]).relevance["r"] is None


def test_strict_contiguity_makes_every_event_relevant() -> None:
    r = _one_stage_after_a("event.type == 'B'", after="strict")
    assert RuleRunner([r]).relevance["r"] is None
    r = _one_stage_after_a("event.type == 'B'")
    relevant = RuleRunner([r]).relevance["r"]
    assert relevant is not None and relevant({"type": "B"}) and not relevant({"type": "C"})


# -- late -------------------------------------------------------------------------------
TIMED = """\
name: timed
source: events
key: k
{id_line}time: ts
within: 10s
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
emit: {{kind: alert, topic: alerts}}
"""


@pytest.mark.parametrize("id_line", ["id: eid\n", ""])
@pytest.mark.parametrize("eid", [None, "given"])
def test_late_is_the_detection_process_returns(id_line: str, eid: Any) -> None:
    runner = RuleRunner([rule(TIMED.format(id_line=id_line))])
    event = {"eid": "e1", "k": "u", "type": "C", "ts": 1_000}
    state = runner.new_state("timed")
    want = runner.process("timed", state, "u", event, 1_000, watermark=5_000, eid=eid)
    assert [d.kind for d in want] == ["late"]
    got = runner.late("timed", "u", event, 1_000, 5_000, eid)
    assert got == want[0]
    # without an id field the content hash names it (or the id the caller gives)
    assert got.data["id"] == ("e1" if id_line else (eid or got.data["id"]))
    assert got.data["watermark"] == 5_000 and got.start == got.end == 1_000


def test_late_is_none_when_not_late_or_in_processing_time() -> None:
    runner = RuleRunner([rule(TIMED.format(id_line="id: eid\n"))])
    event = {"eid": "e1", "k": "u", "type": "A", "ts": 5_000}
    assert runner.late("timed", "u", event, 5_000, 5_000) is None
    assert runner.late("timed", "u", event, 6_000, 5_000) is None
    processing = rule(TIMED.format(id_line="").replace("time: ts\n", ""))
    runner = RuleRunner([processing])
    assert runner.late("timed", "u", event, 1, 5_000) is None
    # and process, in processing time, never calls an event late either
    state = runner.new_state("timed")
    assert runner.process("timed", state, "u", event, 1, watermark=5_000) == []


# -- leaving out irrelevant events ------------------------------------------------------
PACK = [
    """\
name: chain-with-not
source: events
key: k
id: id
time: ts
within: 10s
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: n
    after: relaxed
    negate: true
    where: event.type == 'N'
  - name: b
    after: relaxed
    where: event.type == 'B' && event.v > 0
emit: {kind: alert, topic: alerts, data: {a: "stages.a[0].id"}}
on_timeout: {kind: alert, topic: timeouts}
""",
    """\
name: absence
source: events
key: k
id: id
time: ts
within: 8s
skip: skip_past_last_event
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: relaxed
    where: event.type == 'B'
  - name: n
    after: relaxed
    negate: true
    where: event.type == 'N'
emit: {kind: offer, topic: offers}
on_timeout: {kind: alert, topic: timeouts}
""",
    """\
name: thrice
source: events
key: k
id: id
time: ts
within: 12s
skip: skip_to_next
stages:
  - name: a
    where: event.type == 'A'
    times: 3
emit: {kind: alert, topic: alerts}
on_timeout: {kind: alert, topic: timeouts}
""",
    """\
name: any-b
source: events
key: k
id: id
time: ts
within: 9s
stages:
  - name: a
    where: event.type == 'A'
  - name: b
    after: any
    where: event.type == 'B'
emit: {kind: alert, topic: alerts}
on_timeout: {kind: alert, topic: timeouts}
""",
]


@st.composite
def _events(draw: Any) -> list[dict[str, Any]]:
    out = []
    ts = 0
    for i in range(draw(st.integers(1, 40))):
        ts += draw(st.integers(0, 3_000))
        back = draw(st.sampled_from([0, 0, 0, 1_000, 4_000]))
        e = {
            "id": f"e{i}",
            "k": f"u{draw(st.integers(0, 2))}",
            "ts": max(0, ts - back),
            "v": draw(st.integers(0, 1)),
        }
        t = draw(st.sampled_from(["A", "B", "N", "X", "Y", "Z", None]))
        if t is not None:
            e["type"] = t
        out.append(e)
    return out


def _run(events: list[dict[str, Any]], leave_out: bool) -> dict[Any, list[Any]]:
    """Every rule of the pack over ``events`` (one per-rule watermark, as the backtest and a
    single-source runtime keep it), per key in order; then time past every deadline."""
    runner = RuleRunner([rule(t) for t in PACK])
    states: dict[tuple[str, str], Any] = {}
    found: dict[Any, list[Any]] = {}
    for e in events:
        for name, key, ts, eid in runner.route("events", e):
            wm = runner.observe(name, ts)
            relevant = runner.relevance[name]
            if leave_out and relevant is not None and not relevant(e):
                late = runner.late(name, key, e, ts, wm, eid)
                out = [late] if late is not None else []
            else:
                state = states.get((name, key))
                if state is None:
                    state = states[name, key] = runner.new_state(name)
                out = runner.process(name, state, key, e, ts, watermark=wm, eid=eid)
            found.setdefault((name, key), []).extend(out)
    for (name, key), state in states.items():
        found.setdefault((name, key), []).extend(runner.advance(name, state, key, 10**9))
        assert state.is_idle
    # a left-out event does not move its key's time: what that would have released (a
    # timeout, an absence match) comes with the key's next relevant event or time move,
    # after the key's late detections in between, and in one call ``process`` lists matches
    # before timeouts: each kind keeps its order
    out: dict[Any, list[Any]] = {}
    for (name, key), v in found.items():
        for d in v:
            out.setdefault((name, key, d.kind), []).append(d)
    return out


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(events=_events())
def test_leaving_out_irrelevant_events_gives_the_same_detections(events: Any) -> None:
    every = _run(events, leave_out=False)
    assert _run(events, leave_out=True) == every


def test_the_pack_has_predicates_and_its_streams_detect() -> None:
    """The property above is not vacuous: every rule of the pack has a predicate and the
    streams it draws give matches, timeouts and late events."""
    runner = RuleRunner([rule(t) for t in PACK])
    assert all(runner.relevance[r.name] is not None for r in runner.rules)
    kinds: set[str] = set()

    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(events=_events())
    def collect(events: Any) -> None:
        for found in _run(events, leave_out=True).values():
            kinds.update(f"{d.rule}:{d.kind}" for d in found)

    collect()
    assert kinds >= {
        f"{name}:{kind}"
        for name in ("chain-with-not", "absence", "thrice", "any-b")
        for kind in ("match", "timeout", "late")
    }
