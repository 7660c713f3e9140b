"""The simulators: reproducible, honest about late and malformed input, truth that covers every rule."""

from __future__ import annotations

import argparse
from collections import Counter

import orjson
import pytest
import yaml

from app.simulate import MALFORMED_KINDS, SCENARIOS, GroundTruth, score, simulate
from app.simulate.sinks import output_files, write_jsonl

SMALL = {"flights": 120, "retail": 60, "supply": 40}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def sim(request):
    return simulate(request.param, entities=SMALL[request.param], seed=11)


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = simulate("retail", entities=30, seed=5)
    b = simulate("retail", entities=30, seed=5)
    c = simulate("retail", entities=30, seed=6)
    assert [m.value for m in a.messages] == [m.value for m in b.messages]
    assert a.truth.to_json() == b.truth.to_json()
    assert [m.value for m in a.messages] != [m.value for m in c.messages]


def test_rule_names_match_the_rule_pack(sim):
    names = set()
    for path in _rules_dir(sim.spec.name).glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        names.add(doc["name"])
        assert doc["source"] == sim.spec.topic
        assert doc["key"] == sim.spec.rule_keys[doc["name"]]
        assert doc["time"] == "ts" and doc["id"] == "event_id"
    assert names == set(sim.truth.expected)


def test_every_rule_has_positive_and_negative_keys(sim):
    for rule, keys in sim.truth.expected.items():
        assert keys, f"{rule}: nothing expected to fire in a small run"
        all_keys = {str(e[sim.spec.rule_keys[rule]]) for e in sim.events()}
        assert set(keys) < all_keys, f"{rule}: every key fires, no near miss is exercised"


def test_every_malformed_kind_is_injected_and_really_unusable(sim):
    kinds = Counter(m.kind for m in sim.truth.malformed)
    assert set(kinds) == set(MALFORMED_KINDS)
    for bad in sim.truth.malformed:
        value = sim.messages[bad.position].value
        assert value == bad.value
        assert sim.messages[bad.position].event is None
        if bad.kind == "non_utf8":
            with pytest.raises(UnicodeDecodeError):
                value.decode("utf-8")
        elif bad.kind == "invalid_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(value)
        elif bad.kind == "not_an_object":
            assert not isinstance(orjson.loads(value), dict)
        elif bad.kind == "missing_key":
            doc = orjson.loads(value)
            assert not any(f in doc for f in sim.spec.key_fields)
        elif bad.kind == "wrong_type":
            assert isinstance(orjson.loads(value)["ts"], str)
        assert b"\n" not in value


def test_late_events_are_late_and_in_bound_ones_are_not(sim):
    """Recompute lateness over the stream: global watermark and per-key watermark agree."""
    ooo = sim.truth.max_out_of_orderness_ms
    late_ids = {x.event_id for x in sim.truth.late}
    assert late_ids, "no late event injected"
    global_max = None
    key_max: dict[str, int] = {}
    key_field = sim.spec.entity_field
    disorder = 0
    for ev in sim.events():
        ts, key = ev["ts"], ev[key_field]
        late_global = global_max is not None and ts < global_max - ooo
        late_key = key in key_max and ts < key_max[key] - ooo
        assert late_global == late_key == (ev["event_id"] in late_ids), ev
        if not late_global:
            # in-bound events stay well inside the bound (half of it at most)
            assert global_max is None or ts >= global_max - ooo // 2
            disorder += global_max is not None and ts < global_max
        global_max = ts if global_max is None else max(global_max, ts)
        key_max[key] = max(key_max.get(key, ts), ts)
    assert disorder == sim.truth.out_of_order > 0


def test_late_events_are_noise_types(sim):
    noise_types = {
        "flights": {"CheckIn", "GateChanged", "RebookingSearch", "Booking", "ConnectionAtRisk"},
        "retail": {"CheckoutStarted"},
        "supply": {"StockLevel", "PurchaseOrder"},
    }
    assert {x.type for x in sim.truth.late} <= noise_types[sim.spec.name]
    if sim.spec.name == "supply":
        by_id = {e["event_id"]: e for e in sim.events()}
        for x in sim.truth.late:
            e = by_id[x.event_id]
            assert e["type"] != "StockLevel" or e["level"] >= e["reorder_point"]


def test_trailing_events_close_every_window(sim):
    """Every entity's last event lies beyond the longest window plus the bound."""
    last_story = max(e["ts"] for e in sim.events() if "-end-" not in e["event_id"])
    trailing = [e for e in sim.events() if "-end-" in e["event_id"]]
    assert len(trailing) == sim.truth.entities
    assert (
        min(e["ts"] for e in trailing) > last_story + sim.spec.longest_window_ms + sim.spec.ooo_ms
    )


def test_event_ids_unique_and_keys_present(sim):
    ids = [e["event_id"] for e in sim.events()]
    assert len(ids) == len(set(ids)) == sim.truth.events
    for e in sim.events():
        assert isinstance(e["ts"], int)
        for f in sim.spec.key_fields:
            assert isinstance(e[f], str) and e[f]


def test_context_records_one_per_entity(sim):
    keys = [r[sim.spec.entity_field] for r in sim.context]
    assert len(keys) == len(set(keys)) == sim.truth.context_records == sim.truth.entities


def test_gold_tier_truth_follows_context():
    s = simulate("flights", entities=200, seed=3)
    gold = {r["passenger_id"] for r in s.context if r["tier"] == "gold"}
    delayed = {e["passenger_id"] for e in s.events() if e["type"] == "FlightDelayed"}
    assert set(s.truth.expected["lounge-voucher"]) == gold & delayed


def test_jsonl_files_and_truth_round_trip(tmp_path, sim):
    files = write_jsonl(sim, tmp_path / "run.jsonl")
    assert files == output_files(tmp_path / "run.jsonl")
    lines = files.events.read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert lines[:-1] == [m.value for m in sim.messages]
    ctx = orjson.loads(files.context.read_bytes())
    assert list(ctx.values()) == sim.context
    assert all(k == v[sim.spec.entity_field] for k, v in ctx.items())
    truth = GroundTruth.read(files.truth)
    assert truth == sim.truth
    assert [m.position for m in truth.malformed] == [
        i for i, m in enumerate(sim.messages) if m.event is None
    ]


def test_simulate_command_writes_files(tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "f.jsonl"
    assert (
        main(
            [
                "simulate",
                "--scenario",
                "supply",
                "--entities",
                "12",
                "--seed",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "supply:" in err and "malformed" in err
    truth = GroundTruth.read(tmp_path / "f.truth.json")
    assert truth.seed == 2 and truth.entities == 12
    assert len(orjson.loads((tmp_path / "f.context.json").read_bytes())) == 12


def test_simulate_command_sizes_by_rate_and_duration(tmp_path):
    from app.cli import main

    out = tmp_path / "r.jsonl"
    assert (
        main(
            [
                "simulate",
                "--scenario",
                "flights",
                "--rate",
                "100",
                "--duration",
                "10s",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    n = out.read_bytes().count(b"\n")
    assert 600 <= n <= 1600  # about rate x duration (1000), whole entities


def test_simulate_command_needs_kafka_or_out(monkeypatch, capsys):
    from app.cli import main

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["simulate", "--scenario", "retail", "--entities", "5"]) == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err


@pytest.mark.parametrize("text,seconds", [("60s", 60), ("2m", 120), ("1500ms", 1.5), ("90", 90)])
def test_duration_parsing(text, seconds):
    from app.commands.simulate import parse_duration_s

    assert parse_duration_s(text) == seconds


def test_duration_parsing_rejects_garbage():
    from app.commands.simulate import parse_duration_s

    with pytest.raises(argparse.ArgumentTypeError, match="use a number with ms, s, m or h"):
        parse_duration_s("soon")


def test_unknown_scenario_is_named():
    with pytest.raises(ValueError, match="choose one of flights, retail, supply"):
        simulate("ferries", entities=3)


def test_many_seeds_build_without_boundary_cases():
    """The self-checks (lateness, rule boundaries) hold over many seeds."""
    for seed in range(25):
        for name, n in (("flights", 40), ("retail", 25), ("supply", 30)):
            s = simulate(name, entities=n, seed=seed)
            assert s.truth.late and s.truth.malformed


def _rules_dir(name: str):
    from pathlib import Path

    return Path(__file__).resolve().parents[3] / "scenarios" / name / "rules"


def test_scoring_reads_backtest_lines_and_cloudevents():
    from cep.rules import Detection

    s = simulate("retail", entities=20, seed=4)
    want = s.truth.expected["loyalty-reward"]
    dets = [
        Detection("loyalty-reward", 1, k, "match", {}, 0, 1, {}, action="offer") for k in want[1:]
    ]
    dets.append(Detection("loyalty-reward", 1, "C-99999", "match", {}, 0, 1, {}, action="offer"))
    dets.append(
        Detection("cart-abandonment", 1, "C-00001", "timeout", {}, 0, 1, {}, action="offer")
    )
    for lines in ([d.to_dict() for d in dets], [d.to_cloudevent() for d in dets]):
        result = score(s.truth, lines)
        r = result.rules["loyalty-reward"]
        assert r.false_negatives == [want[0]] and r.false_positives == ["C-99999"]
        assert r.precision == (len(want) - 1) / len(want) and r.recall == (len(want) - 1) / len(
            want
        )
        assert result.rules["cart-abandonment"].detected == 0  # timeouts are not matches
        assert not result.perfect
