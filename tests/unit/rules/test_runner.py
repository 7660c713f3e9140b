"""RuleRunner: routing, extraction, CEL in the engine, state, late events, time."""

from __future__ import annotations

import pytest

from cep.rules import RuleError, RuleRunner
from cep.rules.evaluate import RuleEnv
from tests.unit.rules.helpers import rule

RISING = """\
name: rising
source: [prices, quotes]
key: customer.id
id: eid
time: ts
skip: skip_past_last_event
stages:
  - name: first
    where: event.type == 'Quote'
  - name: higher
    where: event.type == 'Quote' && event.price > stages.first[0].price
    times: 2
    consecutive: true
emit: {kind: alert, topic: alerts, data: {from: "stages.first[0].price", to: "event.price"}}
"""


def q(eid: str, ts: int, price: float, cid: str = "c1") -> dict:
    return {"eid": eid, "type": "Quote", "customer": {"id": cid}, "price": price, "ts": ts}


def feed(runner: RuleRunner, events: list[dict], topic: str = "prices") -> list:
    states: dict = {}
    out = []
    for e in events:
        for r in runner.route(topic, e):
            state = states.setdefault((r.rule, r.key), runner.new_state(r.rule))
            out += runner.process(
                r.rule, state, r.key, e, r.ts, watermark=runner.observe(r.rule, r.ts)
            )
    return out


def test_iterative_condition_compares_with_an_earlier_stage() -> None:
    out = feed(
        RuleRunner([rule(RISING)]),
        [q("a", 1, 10.0), q("b", 2, 11.0), q("c", 3, 9.0), q("d", 4, 12.0)],
    )
    # consecutive: from a, b (11 > 10) then c (9 < 10) breaks the run; from b, c fails too;
    # from c, d (12 > 9) is only one higher quote of the two needed
    assert out == []
    out = feed(RuleRunner([rule(RISING)]), [q("a", 1, 10.0), q("b", 2, 11.0), q("c", 3, 12.5)])
    assert [(d.stages, d.data) for d in out] == [
        ({"first": ["a"], "higher": ["b", "c"]}, {"from": 10.0, "to": 12.5})
    ]


def test_route_extracts_key_time_and_id() -> None:
    runner = RuleRunner([rule(RISING)])
    assert runner.route("quotes", q("x", 5, 1.0, cid="c9")) == [("rising", "c9", 5, "x")]
    assert runner.route("other-topic", q("x", 5, 1.0)) == []
    routes, problems = runner.route_report("prices", {"type": "Quote", "ts": 1})
    assert routes == [] and problems == [
        ("rising", "rule rising: no key field 'customer.id' in the event")
    ]
    routes, problems = runner.route_report("prices", {"customer": {"id": 7}, "ts": "soon"})
    assert problems == [
        (
            "rising",
            "rule rising: time field 'ts': 'soon' is not an RFC 3339 time (e.g. 2026-11-25T10:00:00Z)",
        )
    ]
    assert runner.route("prices", {"customer": {"id": 7}, "ts": "2026-01-01T00:00:01+00:00"}) == [
        ("rising", "7", 1_767_225_601_000, None)
    ]
    _, problems = runner.route_report(
        "prices", {"customer": {"id": 7}, "ts": "2026-01-01T00:00:01"}
    )
    assert problems == [
        (
            "rising",
            "rule rising: time field 'ts': '2026-01-01T00:00:01' has no UTC offset; add Z or +01:00",
        )
    ]
    _, problems = runner.route_report("prices", ["not", "an", "object"])
    assert problems == [("rising", "an event is a JSON object, got list")]


def test_key_as_cel_expression() -> None:
    r = rule(RISING.replace("key: customer.id", "key: event.customer.id + ':' + event.region"))
    runner = RuleRunner([r])
    e = {**q("x", 5, 1.0), "region": "eu"}
    assert runner.route("prices", e) == [("rising", "c1:eu", 5, "x")]
    _, problems = runner.route_report("prices", q("x", 5, 1.0))
    assert problems[0][1].startswith("rule rising: key expression failed:")


def test_context_is_visible_to_conditions_and_data() -> None:
    r = rule("""\
        name: gold
        source: s
        key: k
        stages:
          - name: a
            where: event.type == 'A' && has(context.tier) && context.tier == 'gold'
        emit: {kind: offer, topic: o, data: {tier: context.tier, k: key}}
    """)
    runner = RuleRunner([r])
    state = runner.new_state("gold")
    e = {"type": "A", "k": "u1"}
    assert runner.process("gold", state, "u1", e, 1, context={"tier": "silver"}) == []
    assert runner.process("gold", state, "u1", e, 1, context=None) == []
    assert runner.cel_errors("gold") == (0, None)
    (d,) = runner.process("gold", state, "u1", e, 2, context={"tier": "gold"})
    assert d.data == {"tier": "gold", "k": "u1"} and d.kind == "match" and d.action == "offer"


def test_state_bytes_round_trip_and_version_change() -> None:
    runner = RuleRunner([rule(RISING)])
    state = runner.new_state("rising")
    runner.process("rising", state, "c1", q("a", 1, 10.0), 1, watermark=1)
    runner.process("rising", state, "c1", q("b", 2, 11.0), 2, watermark=2)
    blob = runner.state_to_bytes("rising", state)
    restored = runner.state_from_bytes("rising", blob)
    (d,) = runner.process("rising", restored, "c1", q("c", 3, 12.0), 3, watermark=3)
    assert d.stages == {"first": ["a"], "higher": ["b", "c"]}
    v2 = RuleRunner([rule(RISING.replace("name: rising", "name: rising\nversion: 2"))])
    fresh = v2.state_from_bytes("rising", blob)
    assert fresh.is_idle and v2.stale_states == 1
    assert v2.state_from_bytes("rising", None).is_idle and v2.stale_states == 1


def test_late_event_is_reported_not_dropped() -> None:
    runner = RuleRunner([rule(RISING)])
    state = runner.new_state("rising")
    runner.process("rising", state, "c1", q("a", 100, 1.0), 100, watermark=100)
    (late,) = runner.process("rising", state, "c1", q("old", 50, 2.0), 50, watermark=100)
    assert late.to_dict() == {
        "rule": "rising",
        "version": 1,
        "key": "c1",
        "kind": "late",
        "stages": {},
        "start": 50,
        "end": 50,
        "data": {"id": "old", "watermark": 100},
    }
    assert late.to_cloudevent() is None


def test_cel_errors_make_the_condition_false_and_are_counted() -> None:
    r = rule("""\
        name: r
        source: s
        key: k
        stages:
          - name: a
            where: event.type == 'A' && event.amount > 10
        emit: {kind: alert, topic: t}
    """)
    runner = RuleRunner([r])
    state = runner.new_state("r")
    assert runner.process("r", state, "k", {"type": "A", "amount": "lots"}, 1) == []
    assert runner.process("r", state, "k", {"type": "B"}, 2) == []  # guard: CEL not run
    count, last = runner.cel_errors("r")
    assert count == 1 and last.startswith("stages[0].where: TypeError: No such overload")
    assert len(runner.process("r", state, "k", {"type": "A", "amount": 11}, 3)) == 1


def test_processing_time_rule_times_out_on_advance() -> None:
    r = rule("""\
        name: idle-cart
        source: carts
        key: cart_id
        within: 30m
        stages:
          - name: added
            where: event.type == 'Added'
          - name: paid
            where: event.type == 'Paid'
        on_timeout: {kind: offer, topic: offers, data: {cart: key}}
    """)
    runner = RuleRunner([r])
    ((name, key, ts, eid),) = runner.route("carts", {"type": "Added", "cart_id": "k1"})
    assert ts is None and eid is None
    state = runner.new_state(name)
    assert runner.process(name, state, key, {"type": "Added", "cart_id": "k1"}, 1_000, eid=0) == []
    assert runner.next_deadline(name, state) == 1_000 + 1_800_000
    assert runner.advance(name, state, key, 1_800_999) == []
    (d,) = runner.advance(name, state, key, 1_801_000)
    assert (d.kind, d.stages, d.start, d.end, d.data, d.topic) == (
        "timeout",
        {"added": [0]},
        1_000,
        1_801_000,
        {"cart": "k1"},
        "offers",
    )


def test_without_id_field_or_eid_the_content_hash_names_the_event() -> None:
    r = rule("""\
        name: r
        source: s
        key: k
        stages:
          - name: a
        emit: {kind: alert, topic: t}
    """)
    runner = RuleRunner([r])
    (d1,) = runner.process("r", runner.new_state("r"), "k", {"k": "k", "x": 1}, 1)
    (d2,) = runner.process("r", runner.new_state("r"), "k", {"x": 1, "k": "k"}, 1)
    assert d1.stages == d2.stages and len(d1.stages["a"][0]) == 16
    assert d1.id == d2.id


def test_only_referenced_fields_are_converted() -> None:
    env = RuleEnv(rule(RISING))
    assert env.event_fields == {"price"}  # 'type' is a guard, checked in Python
    assert not env.uses_context and not env.uses_key


def test_unknown_rule_and_duplicate_names() -> None:
    runner = RuleRunner([rule(RISING)])
    with pytest.raises(RuleError, match="no rule named 'nope'; loaded: rising"):
        runner.new_state("nope")
    with pytest.raises(RuleError, match="two rules are named 'rising'"):
        RuleRunner([rule(RISING), rule(RISING)])


CONTEXT_RULE = """\
name: lounge
source: flights
key: passenger_id
id: event_id
time: ts
within: 1h
context:
  source: [profiles, tiers]
  key: pax.id
stages:
  - name: delayed
    where: event.type == 'Delayed' && has(context.tier) && context.tier == 'gold'
  - name: boarded
    where: event.type == 'Boarded'
emit: {kind: offer, topic: offers, data: {tier: context.tier}}
"""


def test_context_spec_routes_records_to_keys() -> None:
    r = rule(CONTEXT_RULE)
    assert r.context.source == ("profiles", "tiers") and r.context.key_path == ("pax", "id")
    runner = RuleRunner([r, rule(RISING)])
    assert runner.context_topics() == ["profiles", "tiers"]
    assert runner.context_routes("profiles", {"pax": {"id": 42}, "tier": "gold"}) == [
        ("lounge", "42")
    ]
    assert runner.context_routes("profiles", {"tier": "gold"}) == []  # no key: ignored
    assert runner.context_routes("prices", {"pax": {"id": 1}}) == []
    assert runner.context_routes("tiers", "not a record") == []


def test_problem_reasons_carry_stable_codes() -> None:
    runner = RuleRunner([rule(RISING)])
    cases = {
        "missing-key": {"ts": 1},
        "invalid-key": {"customer": {"id": ""}, "ts": 1},
        "missing-time": {"customer": {"id": "c"}},
        "invalid-time": {"customer": {"id": "c"}, "ts": "soon"},
    }
    for code, event in cases.items():
        ((_name, reason),) = runner.route_report("prices", event)[1]
        assert reason.code == code, (code, reason)
    ((_name, reason),) = runner.route_report("prices", [1])[1]
    assert (reason.code, str(reason)) == ("not-an-object", "an event is a JSON object, got list")


def test_describe_state_lists_partial_matches_with_event_ids() -> None:
    runner = RuleRunner([rule(CONTEXT_RULE)])
    state = runner.new_state("lounge")
    e = {"event_id": "d1", "type": "Delayed", "passenger_id": "p", "ts": 1_000}
    assert runner.process("lounge", state, "p", e, 1_000, context={"tier": "gold"}) == []
    late_buffered = {"event_id": "x", "type": "Noise", "passenger_id": "p", "ts": 5_000}
    runner.process(
        "lounge", state, "p", late_buffered, 5_000, context={"tier": "gold"}, watermark=2_000
    )
    (run,) = runner.describe_state("lounge", state)
    assert run["events"] == {"delayed": ["d1"]} and run["waiting_for"] == ["boarded"]
    assert (run["started_at"], run["expires_at"], run["buffered"], run["held"]) == (
        1_000,
        3_601_000,
        1,
        False,
    )
