"""Every key of the rule format, as loaded into the model and run on the engine."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from cep.rules import RuleRunner, load_rules_text, rule_schema
from tests.unit.rules.helpers import rule

FULL = """\
name: rebooking-offer
version: 3
description: Offer rebooking when a delayed passenger searches but does not book
source: flight-events
key: passenger_id
id: event_id
time: ts
max_out_of_orderness: 5s
within: 2h
skip: skip_past_last_event
stages:
  - name: delayed
    where: event.type == 'FlightDelayed' && event.delay_min >= 60
  - name: searched
    after: relaxed
    where: event.type == 'RebookingSearch'
    times: {min: 1, max: 3}
  - name: booked
    after: relaxed
    negate: true
    where: event.type == 'Booking'
emit:        {kind: offer, topic: offers, data: {flight: "stages.delayed[0].flight"}}
on_timeout:  {kind: alert, topic: alerts, data: {flight: "stages.delayed[0].flight", n: 1, tags: ["'x'", true]}}
"""


def test_every_top_level_key() -> None:
    r = rule(FULL)
    assert (r.name, r.version, r.description) == (
        "rebooking-offer",
        3,
        "Offer rebooking when a delayed passenger searches but does not book",
    )
    assert r.source == ("flight-events",) and r.key_path == ("passenger_id",)
    assert r.id == ("event_id",) and r.time == ("ts",)
    assert (r.max_out_of_orderness, r.within, r.skip) == (
        5_000,
        7_200_000,
        ("skip_past_last_event", None),
    )
    assert [s.name for s in r.stages] == ["delayed", "searched", "booked"]
    assert r.stages[0].guard == ("type", "FlightDelayed")
    assert r.stages[0].residual.source == "event.delay_min >= 60"
    assert (r.stages[1].after, r.stages[1].times) == ("relaxed", (1, 3))
    assert r.stages[2].negate and r.stages[2].residual is None
    assert (r.emit.kind, r.emit.topic, r.emit.data) == (
        "offer",
        "offers",
        {"flight": "stages.delayed[0].flight"},
    )
    assert r.on_timeout.kind == "alert"
    assert r.text == FULL


def test_defaults() -> None:
    r = rule(
        "name: r\nsource: [a, b]\nkey: k\nstages:\n  - name: x\nemit: {kind: alert, topic: t}\n"
    )
    assert (r.version, r.description, r.source, r.id, r.time) == (1, "", ("a", "b"), None, None)
    assert (r.max_out_of_orderness, r.within, r.skip) == (0, None, ("no_skip", None))
    assert r.stages[0].where is None and r.stages[0].after is None


def _run(text: str, events: list[dict]) -> list:
    runner = RuleRunner(load_rules_text(text))
    (r,) = runner.rules
    states: dict = {}
    out = []
    for i, e in enumerate(events):
        for route in runner.route(r.source[0], e):
            st = states.setdefault(route.key, runner.new_state(r.name))
            out += runner.process(r.name, st, route.key, e, e.get("t", i), eid=i)
    for key, st in states.items():
        out += runner.advance(r.name, st, key, 10**12)
    return [(d.kind, d.stages) for d in out]


def rule_with(stages: str, extra: str = "") -> str:
    return f"name: r\nsource: s\nkey: k\n{extra}stages:\n{stages}emit: {{kind: alert, topic: t}}\n"


def ev(*types: str) -> list[dict]:
    return [{"k": "1", "type": t} for t in types]


def test_after_strict_relaxed_any() -> None:
    two = "  - name: a\n    where: event.type == 'A'\n  - name: b\n    after: {}\n    where: event.type == 'B'\n"
    assert _run(rule_with(two.format("strict")), ev("A", "C", "B")) == []
    assert _run(rule_with(two.format("relaxed")), ev("A", "C", "B")) == [
        ("match", {"a": [0], "b": [2]})
    ]
    assert _run(rule_with(two.format("any")), ev("A", "B", "B")) == [
        ("match", {"a": [0], "b": [1]}),
        ("match", {"a": [0], "b": [2]}),
    ]


def test_negate_strict_is_not_next() -> None:
    stages = (
        "  - name: a\n    where: event.type == 'A'\n  - name: n\n    after: strict\n    negate: true\n"
        "    where: event.type == 'X'\n  - name: b\n    where: event.type == 'B'\n"
    )
    assert _run(rule_with(stages), ev("A", "X", "B")) == []
    assert _run(rule_with(stages), ev("A", "C", "B")) == [("match", {"a": [0], "b": [2]})]


def test_times_one_or_more_optional_greedy_until() -> None:
    a = "  - name: a\n    where: event.type == 'A'\n"
    b = "  - name: b\n    where: event.type == 'B'\n"
    assert _run(rule_with(a + "    times: 2\n" + b), ev("A", "A", "B")) == [
        ("match", {"a": [0, 1], "b": [2]})
    ]
    assert _run(rule_with("  - name: s\n" + a + "    optional: true\n" + b), ev("S", "B")) == [
        ("match", {"s": [0], "b": [1]})
    ]
    assert _run(
        rule_with(a + "    one_or_more: true\n    greedy: true\n" + b), ev("A", "A", "B")
    ) == [
        ("match", {"a": [0, 1], "b": [2]}),
        ("match", {"a": [1], "b": [2]}),
    ]
    until = a + "    times: {min: 1}\n    until: event.stop == true\n" + b
    events = ev("A", "A", "B")
    events[1]["stop"] = True
    assert _run(rule_with(until), events) == [("match", {"a": [0], "b": [2]})]


def test_consecutive_and_allow_combinations() -> None:
    a = "  - name: a\n    where: event.type == 'A'\n    times: 2\n"
    b = "  - name: b\n    where: event.type == 'B'\n"
    assert _run(rule_with(a + "    consecutive: true\n" + b), ev("A", "C", "A", "B")) == []
    assert _run(rule_with(a + b), ev("A", "C", "A", "B")) == [("match", {"a": [0, 2], "b": [3]})]
    assert (
        len(_run(rule_with(a + "    allow_combinations: true\n" + b), ev("A", "A", "A", "B"))) == 3
    )


def test_group_stage() -> None:
    stages = (
        "  - name: s\n    where: event.type == 'S'\n  - name: g\n    times: 2\n    stages:\n"
        "      - name: x\n        where: event.type == 'X'\n      - name: y\n        after: strict\n"
        "        where: event.type == 'Y'\n"
    )
    assert _run(rule_with(stages, "skip: skip_past_last_event\n"), ev("S", "X", "Y", "X", "Y")) == [
        ("match", {"s": [0], "x": [1, 3], "y": [2, 4]})
    ]


def test_skip_strategies() -> None:
    a = "  - name: a\n    where: event.type == 'A'\n    one_or_more: true\n"
    b = "  - name: b\n    where: event.type == 'B'\n"
    events = ev("A", "A", "B")
    assert _run(rule_with(a + b), events) == [  # no_skip
        ("match", {"a": [0, 1], "b": [2]}),
        ("match", {"a": [0], "b": [2]}),
        ("match", {"a": [1], "b": [2]}),
    ]
    assert _run(rule_with(a + b, "skip: skip_past_last_event\n"), events) == [
        ("match", {"a": [0, 1], "b": [2]})
    ]
    assert _run(rule_with(a + b, "skip: {skip_to_last: a}\n"), events) == [
        ("match", {"a": [0, 1], "b": [2]}),
        ("match", {"a": [1], "b": [2]}),
    ]
    assert _run(rule_with(a + b, "skip: skip_to_next\n"), events) == [
        ("match", {"a": [0, 1], "b": [2]}),
        ("match", {"a": [1], "b": [2]}),
    ]
    assert _run(rule_with(a + b, "skip: {skip_to_first: b}\n"), events)[0] == (
        "match",
        {"a": [0, 1], "b": [2]},
    )


def test_within_and_on_timeout() -> None:
    stages = (
        "  - name: a\n    where: event.type == 'A'\n  - name: b\n    where: event.type == 'B'\n"
    )
    text = rule_with(stages, "within: 10ms\n").replace(
        "emit: {kind: alert, topic: t}",
        "emit: {kind: alert, topic: t}\non_timeout: {kind: alert, topic: late}",
    )
    events = [{"k": "1", "type": "A", "t": 0}, {"k": "1", "type": "B", "t": 20}]
    assert _run(text, events) == [("timeout", {"a": [0]})]


def test_json_rule_files_are_accepted() -> None:
    doc = yaml.safe_load(FULL)
    (r,) = load_rules_text(json.dumps(doc), "rule.json")
    assert r.name == "rebooking-offer" and r.within == 7_200_000


def test_schema_is_valid_and_accepts_every_test_pack() -> None:
    schema = rule_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    files = sorted((Path(__file__).parent / "data").rglob("*.yaml"))
    assert len(files) == 4
    for f in [*files]:
        jsonschema.validate(yaml.safe_load(f.read_text()), schema)
    jsonschema.validate(yaml.safe_load(FULL), schema)
