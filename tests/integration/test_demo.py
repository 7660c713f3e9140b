"""`kairos demo --duration N`: the three scenarios live, exact against the ground truth, no leftovers.

Runs the demo as a user would (its own local broker unless KAFKA_BOOTSTRAP_SERVERS is set).
Every rule must fire with 100 % precision and recall on the events within bounds, each rule
must report exactly the injected late events, the dead-letter topic must hold exactly the
injected malformed messages (byte for byte), and no process the demo started may survive it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from app.kafka.process import pid_alive

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
RULES = {
    "rebooking-offer",
    "service-desk-alert",
    "lounge-voucher",
    "cart-abandonment",
    "browse-recommendation",
    "loyalty-reward",
    "reorder-alert",
    "supplier-alert",
}


def _processes_with_env(needle: bytes) -> list[int]:
    """Pids whose environment contains ``needle`` (the demo's per-run app id)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes() and pid_alive(int(entry.name)):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_unattended_demo_is_exact_and_leaves_nothing(tmp_path):
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "demo",
            "--duration",
            "40",
            "--seed",
            "7",
            "--report-json",
            str(report_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]

    report = orjson.loads(report_path.read_bytes())
    assert report["complete"] is True and report["problems"] == []
    assert set(report["rules"]) == RULES
    for name, r in report["rules"].items():
        assert r["matches"] > 0, f"{name} never fired"
        assert (r["false_positives"], r["false_negatives"]) == ([], []), name
        assert r["precision"] == r["recall"] == 1.0, name
        assert r["late_injected"] > 0 and r["late_reported"] == r["late_injected"], name
    assert set(report["dead_letters"]) == {"flights", "retail", "supply"}
    for name, d in report["dead_letters"].items():
        assert d["injected"] >= 5, name
        assert (d["received"], d["missing"], d["unexpected"]) == (d["injected"], 0, 0), name
        assert set(d["reasons"]) >= {"malformed-json", "not-utf8", "not-an-object"}, d

    # Nothing left: the worker, the broker the demo started, any process of this run.
    app_id = re.search(r"worker (kairos-demo-[0-9a-f]+) starting \(pid (\d+)", output)
    assert app_id, output[-3000:]
    pids = [int(app_id.group(2))]
    broker = re.search(r"local broker at \S+ \(pid ([\d, ]+)\)", output)
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ:
        assert broker, output[:3000]
        pids += [int(p) for p in broker.group(1).split(",")]
    assert [p for p in pids if pid_alive(p)] == []
    assert _processes_with_env(f"KAIROS_APP_ID={app_id.group(1)}".encode()) == []
