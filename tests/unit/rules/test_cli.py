"""`kairos rules validate|schema` and `apply` refusing invalid files (no broker needed)."""

from __future__ import annotations

import json
from pathlib import Path

from app.cli import main
from cep.rules import rule_schema
from tests.unit.rules.helpers import BASE

DATA = Path(__file__).parent / "data"


def test_validate_valid_packs_exits_0(capsys) -> None:
    assert main(["rules", "validate", *(str(p) for p in sorted(DATA.glob("*/rules")))]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "4 rule(s) valid, 0 error(s) in 4 file(s)"


def test_validate_invalid_exits_1_and_names_file_line_path(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("kind: alert", "kind: alarm"))
    good = tmp_path / "good.yaml"
    good.write_text(BASE.replace("name: r", "name: g"))
    assert main(["rules", "validate", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert (
        captured.out == f"{bad}:7:14: emit.kind: 'alarm' is not allowed; use one of: offer, alert\n"
    )
    assert captured.err.strip() == "1 rule(s) valid, 1 error(s) in 2 file(s)"


def test_validate_json_output(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("event.type == 'A'", "event.type =="))
    assert main(["rules", "validate", "--json", str(bad)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "file": str(bad),
        "path": "stages[0].where",
        "line": 6,
        "column": 25,
        "message": "CEL syntax error at line 1, column 14: the expression ends too early; "
        "write a complete CEL expression, e.g. event.type == 'Booking' && event.amount > 100",
    }


def test_schema_prints_the_published_schema(capsys) -> None:
    assert main(["rules", "schema"]) == 0
    assert json.loads(capsys.readouterr().out) == rule_schema()


def test_apply_refuses_invalid_files_before_touching_kafka(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens there
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("name: r", "name: s").replace("source: events", "source: []"))
    assert main(["rules", "apply", str(good), str(bad)]) == 1
    captured = capsys.readouterr()
    assert "published" not in captured.out
    assert "nothing published: fix the errors above and run again" in captured.err
