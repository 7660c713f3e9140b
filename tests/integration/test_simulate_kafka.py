"""`kairos simulate` to Kafka: the topic holds exactly the JSONL stream, in order; context first."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from app.simulate import simulate
from tests.fixtures.records import read_records
from tests.fixtures.topics import create_topic

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_to_kafka_writes_the_same_stream_as_the_file(kafka_bootstrap, tmp_path):
    prefix = f"sim-{uuid.uuid4().hex[:6]}-"
    for topic in ("supply-events", "sku-master"):  # one partition: one total order to compare
        asyncio.run(create_topic(kafka_bootstrap, prefix + topic, partitions=1))
    truth = tmp_path / "truth.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate",
            "--scenario",
            "supply",
            "--entities",
            "8",
            "--seed",
            "4",
            "--rate",
            "0",
            "--topic-prefix",
            prefix,
            "--truth",
            str(truth),
            "--bootstrap",
            kafka_bootstrap,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    sim = simulate("supply", entities=8, seed=4)
    assert orjson.loads(truth.read_bytes()) == orjson.loads(sim.truth.to_json())

    events = asyncio.run(
        read_records(kafka_bootstrap, prefix + "supply-events", len(sim.messages), timeout=60)
    )
    assert [v for _, v in events] == [m.value for m in sim.messages]
    assert [k for k, _ in events] == [m.key for m in sim.messages]
    context = asyncio.run(read_records(kafka_bootstrap, prefix + "sku-master", 8, timeout=60))
    assert [orjson.loads(v) for _, v in context] == sim.context
