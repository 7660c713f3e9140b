"""`kairos rules apply` / `list` against the real broker (compacted rules topic)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from app.cli import main
from app.commands.rules import read_rules_topic
from app.settings import Settings

pytestmark = pytest.mark.kafka

PACKS = Path(__file__).parent.parent / "unit" / "rules" / "data"


def test_apply_then_list(kafka_bootstrap: str, monkeypatch, capsys, tmp_path) -> None:
    topic = f"kairos-rules-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("KAIROS_RULES_TOPIC", topic)
    assert main(["rules", "apply", str(PACKS / "flights" / "rules")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"published connection-at-risk-offer v1 to {topic}",
        f"published searched-not-booked v2 to {topic}",
    ]
    # a new version replaces the old one under the same key
    v3 = tmp_path / "snb.yaml"
    v3.write_text(
        (PACKS / "flights" / "rules" / "searched-not-booked.yaml")
        .read_text()
        .replace("version: 2", "version: 3")
    )
    assert main(["rules", "apply", str(v3)]) == 0
    capsys.readouterr()
    assert main(["rules", "list"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "connection-at-risk-offer\tv1\tflight-events\t"
        "Offer rebooking when a delayed flight puts the passenger's connection at risk",
        "searched-not-booked\tv3\tflight-events\t",
    ]
    latest = asyncio.run(read_rules_topic(Settings.from_env()))
    assert latest["searched-not-booked"] == v3.read_bytes()
