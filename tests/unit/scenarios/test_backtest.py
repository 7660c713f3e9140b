"""Each rule pack, backtested on its simulator's stream, scores 100 % against the ground truth.

The stream holds out-of-order events within bounds, late events beyond them (reported as
late, once per rule, exactly the injected ones) and malformed messages (skipped lines, or
events without a usable key/time, exactly the injected ones).
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import orjson
import pytest

from app.cli import main
from app.simulate import score, simulate
from app.simulate.sinks import write_jsonl

ROOT = Path(__file__).resolve().parents[3]
SIZES = {"flights": 300, "retail": 120, "supply": 48}
#: Malformed kinds the backtest skips as lines; the others are events it cannot route.
UNDECODABLE = {"invalid_json", "not_an_object", "non_utf8"}


@pytest.fixture(scope="module", params=sorted(SIZES))
def backtested(request, tmp_path_factory):
    name = request.param
    sim = simulate(name, entities=SIZES[name], seed=20261125)
    tmp = tmp_path_factory.mktemp(name)
    files = write_jsonl(sim, tmp / f"{name}.jsonl")
    out = tmp / "detections.jsonl"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(
            [
                "backtest",
                "--rules",
                str(ROOT / "scenarios" / name / "rules"),
                "--events",
                str(files.events),
                "--topic",
                sim.spec.topic,
                "--context",
                str(files.context),
                "--out",
                str(out),
            ]
        )
    assert code == 0, err.getvalue()
    detections = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return sim, detections, err.getvalue(), files


def test_the_rule_packs_validate(capsys):
    packs = [str(p) for p in sorted((ROOT / "scenarios").glob("*/rules"))]
    assert len(packs) == 3
    assert main(["rules", "validate", *packs]) == 0, capsys.readouterr().err


def test_precision_and_recall_are_100_percent(backtested):
    sim, detections, _, _ = backtested
    result = score(sim.truth, detections)
    for rule in result.rules.values():
        assert (rule.false_positives, rule.false_negatives) == ([], []), rule.rule
        assert rule.precision == rule.recall == 1.0
    assert result.unknown_rules == []
    assert result.perfect


def test_every_rule_fires(backtested):
    sim, detections, _, _ = backtested
    fired = {d["rule"] for d in detections if d["kind"] == "match"}
    assert fired == set(sim.truth.expected)


def test_late_events_are_exactly_the_injected_ones_per_rule(backtested):
    sim, detections, _, _ = backtested
    injected = {x.event_id for x in sim.truth.late}
    assert injected
    for rule in sim.truth.expected:
        late = [d["data"]["id"] for d in detections if d["rule"] == rule and d["kind"] == "late"]
        assert sorted(late) == sorted(injected), rule


def test_malformed_messages_are_exactly_the_injected_ones(backtested):
    sim, _, err, files = backtested
    skipped = {
        int(n) - 1 for n in re.findall(rf"{re.escape(str(files.events))}:(\d+): skipped", err)
    }
    assert skipped == {m.position for m in sim.truth.malformed if m.kind in UNDECODABLE}
    unroutable = sum(1 for m in sim.truth.malformed if m.kind not in UNDECODABLE)
    assert unroutable > 0
    for rule in sim.truth.expected:
        line = re.search(rf"^\s+{rule} v\d+: .*$", err, re.M)
        assert line, err
        assert f"{unroutable} event(s) without key/time" in line.group(0), line.group(0)
