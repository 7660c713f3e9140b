"""Backtests of hand-made event files; every expected line below was worked out by hand.

Flights (both rules read every event; max_out_of_orderness 1m, so the watermark is the largest
ts seen minus 60 000):
- p1: delayed 90 min on KA100 (f1, t=0), then ConnectionAtRisk for KA100 (f7, 30 min): offer.
- f9 (2 min) arrives after f8 raised the watermark to 30 min: late for both rules.
- p2: delayed on KA200 (f2, 1 min), searched (f3, 5 min), never booked: once the watermark passes
  1 min + 45 min (f10 at 120 min) the absence match fires: agent alert. Its ConnectionAtRisk
  (f8) names another flight (KA999), so the iterative condition fails and the offer rule's
  partial match times out at 1 min + 2 h = 7 260 000 (only at the flush: on_timeout alert).
- p3: delayed 20 min (below 60: no offer), searched, booked (f6): no alert.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from app.cli import main
from cep.rules import RuleRunner, load_rules
from cep.rules.backtest import run_backtest

DATA = Path(__file__).parent / "data"

OFFER_P1 = {
    "rule": "connection-at-risk-offer",
    "version": 1,
    "key": "p1",
    "kind": "match",
    "stages": {"delayed": ["f1"], "at_risk": ["f7"]},
    "start": 0,
    "end": 1_800_000,
    "data": {"flight": "KA100", "connection": "KA900", "delay_min": 90, "offer": "rebooking"},
}
LATE_F9 = {
    "version": 1,
    "key": "p1",
    "kind": "late",
    "stages": {},
    "start": 120_000,
    "end": 120_000,
    "data": {"id": "f9", "watermark": 1_800_000},
}
ALERT_P2 = {
    "rule": "searched-not-booked",
    "version": 2,
    "key": "p2",
    "kind": "match",
    "stages": {"delayed": ["f2"], "searched": ["f3"]},
    "start": 60_000,
    "end": 300_000,
    "data": {"passenger": "p2", "flight": "KA200"},
}
TIMEOUT_P2 = {
    "rule": "connection-at-risk-offer",
    "version": 1,
    "key": "p2",
    "kind": "timeout",
    "stages": {"delayed": ["f2"]},
    "start": 60_000,
    "end": 7_260_000,
    "data": {"flight": "KA200", "reason": "delay without connection notice"},
}


def _run(pack: str, **kwargs) -> tuple[list[dict], object, list]:
    runner = RuleRunner(load_rules([DATA / pack / "rules"]))
    out: list[dict] = []
    bad: list = []
    with open(DATA / pack / "events.jsonl", "rb") as f:
        stats = run_backtest(
            runner,
            f,
            lambda d: out.append(d.to_dict()),
            on_malformed=lambda n, r: bad.append(n),
            **kwargs,
        )
    return out, stats, bad


def test_flight_pack() -> None:
    out, stats, bad = _run("flights")
    assert out == [
        OFFER_P1,
        {"rule": "connection-at-risk-offer", **LATE_F9},
        {"rule": "searched-not-booked", **LATE_F9, "version": 2},
        ALERT_P2,
        TIMEOUT_P2,
    ]
    assert bad == [9]  # 1-based line number of the malformed line
    assert stats.events == 10 and stats.malformed == 1


def test_flight_pack_without_flush_keeps_pending_timeouts() -> None:
    out, _, _ = _run("flights", flush=False)
    assert TIMEOUT_P2 not in out
    assert out[:4] == [
        OFFER_P1,
        {"rule": "connection-at-risk-offer", **LATE_F9},
        {"rule": "searched-not-booked", **LATE_F9, "version": 2},
        ALERT_P2,
    ]


def test_retail_pack_with_context() -> None:
    """c1's cart (t=0) has no order within 30 min: offer when c4's cart (50 min) moves time.
    c2 ordered; c3's cart is empty; c4's window ends only at the flush. Ids are line numbers."""
    contexts = json.loads((DATA / "retail" / "context.json").read_text())
    out, _, _ = _run("retail", contexts=contexts)
    base = {"rule": "abandoned-cart-offer", "version": 1, "kind": "match"}
    assert out == [
        {
            **base,
            "key": "c1",
            "stages": {"cart": [0]},
            "start": 0,
            "end": 0,
            "data": {"customer": "c1", "total": 120.5, "tier": "gold"},
        },
        {
            **base,
            "key": "c4",
            "stages": {"cart": [5]},
            "start": 3_000_000,
            "end": 3_000_000,
            "data": {"customer": "c4", "total": 15, "tier": "standard"},
        },
    ]


def test_retail_pack_routes_by_topic() -> None:
    out, stats, _ = _run("retail", topic="payments")  # no rule reads it
    assert out == [] and stats.routed == 0


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_supply_pack() -> None:
    """A-1: delayed shipment 08:00, low stock 12:00, no purchase order: alert.
    B-2: a purchase order came in between. C-3: low only 25h after the delay (window 1d).
    D-4: its time field is not a time: not used (counted), never fatal."""
    out, stats, _ = _run("supply")
    assert out == [
        {
            "rule": "stockout-risk",
            "version": 1,
            "key": "A-1",
            "kind": "match",
            "stages": {"shipment_delayed": ["s1"], "low_stock": ["s4"]},
            "start": _ms("2026-11-24T08:00:00+00:00"),
            "end": _ms("2026-11-24T12:00:00+00:00"),
            "data": {"sku": "A-1", "on_hand": 5, "shipment": "SH-1"},
        }
    ]
    assert stats.unusable["stockout-risk"] == 1


def test_cli_backtest_writes_lines_and_summary(tmp_path, capsys) -> None:
    out_file = tmp_path / "out.jsonl"
    code = main(
        [
            "backtest",
            "--rules",
            str(DATA / "flights" / "rules"),
            "--events",
            str(DATA / "flights" / "events.jsonl"),
            "--out",
            str(out_file),
        ]
    )
    assert code == 0
    lines = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert lines[0] == OFFER_P1 and lines[-1] == TIMEOUT_P2 and len(lines) == 5
    err = capsys.readouterr().err
    assert f"{DATA / 'flights' / 'events.jsonl'}:9: skipped: invalid JSON" in err
    assert "events: 10 (1 malformed line(s) skipped)" in err
    assert "connection-at-risk-offer v1: 1 match, 1 timeout, 1 late" in err
    assert "searched-not-booked v2: 1 match, 0 timeout, 1 late" in err


def test_cli_backtest_cloudevents(capsys) -> None:
    code = main(
        [
            "backtest",
            "--rules",
            str(DATA / "supply" / "rules"),
            "--events",
            str(DATA / "supply" / "events.jsonl"),
            "--cloudevents",
        ]
    )
    assert code == 0
    (line,) = capsys.readouterr().out.splitlines()
    event = json.loads(line)
    assert event["type"] == "kairos.alert" and event["subject"] == "A-1"
    assert event["source"] == "/kairos/rules/stockout-risk/v1"
    assert event["time"] == "2026-11-24T12:00:00.000Z"


def test_cli_backtest_refuses_invalid_rules(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n")
    code = main(
        ["backtest", "--rules", str(bad), "--events", str(DATA / "supply" / "events.jsonl")]
    )
    assert code == 1
    assert "backtest not run: fix the rule errors above" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["nope.jsonl"])
def test_cli_backtest_unreadable_events(tmp_path, capsys, missing: str) -> None:
    code = main(
        [
            "backtest",
            "--rules",
            str(DATA / "supply" / "rules"),
            "--events",
            str(tmp_path / missing),
        ]
    )
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_processing_time_rule_uses_the_clock() -> None:
    """Without a time field the backtest reads the clock, as the runtime does: a cart with no
    payment for 30 min of clock time times out when a later event finds the clock past it."""
    from cep.rules import load_rules_text
    from cep.rules.backtest import Backtest

    (r,) = load_rules_text(
        "name: idle\nsource: carts\nkey: cart\nwithin: 30m\nstages:\n"
        "  - name: added\n    where: event.type == 'Added'\n"
        "  - name: paid\n    where: event.type == 'Paid'\n"
        "on_timeout: {kind: offer, topic: offers}\n"
    )
    now = [1_000.0]  # seconds
    out: list = []
    bt = Backtest(RuleRunner([r]), out.append, clock=lambda: now[0])
    bt.feed(0, {"type": "Added", "cart": "k1"})
    now[0] += 1_799
    bt.feed(1, {"type": "Noise", "cart": "k2"})
    assert out == []
    now[0] += 2
    bt.feed(2, {"type": "Noise", "cart": "k2"})
    assert [(d.kind, d.key, d.stages, d.end) for d in out] == [
        ("timeout", "k1", {"added": [0]}, 1_000_000 + 1_800_000)
    ]
    bt.finish()
    assert len(out) == 1


def test_progress_bar_path_gives_the_same_output(tmp_path) -> None:
    from app.commands.backtest import _feed_with_progress
    from cep.rules.backtest import Backtest

    runner = RuleRunner(load_rules([DATA / "flights" / "rules"]))
    out: list = []
    bt = Backtest(runner, lambda d: out.append(d.to_dict()))
    path = DATA / "flights" / "events.jsonl"
    with open(path, "rb") as f:
        _feed_with_progress(bt, f, path.stat().st_size)
    bt.finish()
    assert out[0] == OFFER_P1 and out[-1] == TIMEOUT_P2 and len(out) == 5


def test_cli_context_file(tmp_path, capsys) -> None:
    ctx = DATA / "retail" / "context.json"
    args = [
        "backtest",
        "--rules",
        str(DATA / "retail" / "rules"),
        "--events",
        str(DATA / "retail" / "events.jsonl"),
    ]
    assert main([*args, "--context", str(ctx)]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["data"]["tier"] == "gold"
    bad = tmp_path / "ctx.json"
    bad.write_text("[1, 2]")
    assert main([*args, "--context", str(bad)]) == 2
    assert "expected a JSON object of key -> context" in capsys.readouterr().err
