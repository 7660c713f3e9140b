"""The demo's report: exact only when detections, late counts and dead letters all match the truth."""

from __future__ import annotations

import yaml

from app.commands.demo import _scenario_list, _write_rules
from app.simulate import simulate
from app.simulate.report import build_report
from cep.rules import Detection, load_rules


def _cloudevents(truths):
    out = []
    for truth in truths.values():
        for rule, keys in truth.expected.items():
            for k in keys:
                out.append(
                    Detection(rule, 1, k, "match", {}, 0, 1, {}, action="offer").to_cloudevent()
                )
    return out


def _dead(sim):
    return [(m.value, "x") for m in sim.truth.malformed]


def test_exact_run_is_perfect():
    sims = {n: simulate(n, entities=e, seed=2) for n, e in (("retail", 30), ("supply", 24))}
    truths = {n: s.truth for n, s in sims.items()}
    late = {r: len(t.late) for t in truths.values() for r in t.expected}
    report = build_report(
        truths, _cloudevents(truths), {n: _dead(s) for n, s in sims.items()}, late
    )
    assert report.perfect and report.every_rule_fired and report.problems() == []


def test_every_deviation_is_reported():
    sims = {n: simulate(n, entities=e, seed=2) for n, e in (("retail", 30), ("supply", 24))}
    truths = {n: s.truth for n, s in sims.items()}
    events = _cloudevents(truths)
    dropped = events.pop(0)  # one missed detection
    late = {r: len(t.late) for t in truths.values() for r in t.expected}
    late["reorder-alert"] -= 1
    dead = {n: _dead(s) for n, s in sims.items()}
    dead["retail"] = [*dead["retail"][1:], (b"{}", "x")]
    report = build_report(truths, events, dead, late)
    assert not report.perfect
    problems = " | ".join(report.problems())
    assert f"missed ['{dropped['subject']}']" in problems
    assert "reorder-alert: " in problems and "late events reported" in problems
    assert "retail: DLQ holds" in problems and "(1 missing, 1 unexpected)" in problems
    assert report.dead_letters["supply"].exact


def test_rule_packs_are_copied_with_prefixed_topics(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "scenarios"
    packs = [root / "retail" / "rules", root / "supply" / "rules"]
    names, ctx = _write_rules(packs, tmp_path / "r", "demo-x-")
    assert sorted(names) == sorted(r.name for r in load_rules([tmp_path / "r"]))
    for path in (tmp_path / "r").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        assert doc["source"].startswith("demo-x-") and doc["emit"]["topic"].startswith("demo-x-")
    assert ctx == set()
    flights = yaml.safe_load((root / "flights" / "rules" / "lounge-voucher.yaml").read_text())
    _, ctx = _write_rules([root / "flights" / "rules"], tmp_path / "f", "p-")
    assert ctx == {"p-" + flights["context"]["source"]}


def test_scenario_list_parsing():
    assert _scenario_list("retail, supply") == ("retail", "supply")
    import argparse

    import pytest

    with pytest.raises(argparse.ArgumentTypeError, match="choose from flights, retail, supply"):
        _scenario_list("ferries")
