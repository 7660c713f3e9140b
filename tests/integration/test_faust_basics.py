"""Faust on the local broker: agent + changelog-backed table + output topic, and recovery.

The tiny app is ``tests.fixtures.wordcount_app``: it counts words in table ``counts`` and
emits ``{"word": w, "count": n}`` per input record.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.fixtures.faust_inprocess import running_app
from tests.fixtures.records import produce, read_records
from tests.fixtures.wordcount_app import make_app

pytestmark = pytest.mark.kafka

APP = "tests.fixtures.wordcount_app"


def _decoded(records):
    return [(k.decode(), json.loads(v)) for k, v in records]


async def _topics(topic_factory):
    return await topic_factory(prefix="words"), await topic_factory(prefix="counts")


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
async def test_agent_updates_table_and_emits_exact_records(
    kafka_bootstrap, topic_factory, faust_worker, tmp_path, guarantee
):
    source, sink = await _topics(topic_factory)
    app_id = f"wc-{uuid.uuid4().hex[:8]}"
    env = {
        "WORDCOUNT_APP_ID": app_id,
        "WORDCOUNT_INPUT": source,
        "WORDCOUNT_OUTPUT": sink,
        "WORDCOUNT_DATADIR": str(tmp_path / "w"),
        "WORDCOUNT_GUARANTEE": guarantee,
    }
    worker = faust_worker(APP, env=env)
    worker.start()

    await produce(kafka_bootstrap, source, [(b"a", b"1"), (b"b", b"1"), (b"a", b"1")])

    out = await read_records(kafka_bootstrap, sink, 3, isolation_level="read_committed")
    assert _decoded(out) == [
        ("a", {"word": "a", "count": 1}),
        ("b", {"word": "b", "count": 1}),
        ("a", {"word": "a", "count": 2}),
    ]
    # The table is changelog-backed: its latest values are in the changelog topic.
    changelog = await read_records(kafka_bootstrap, f"{app_id}-counts-changelog", 3)
    latest = {json.loads(k): json.loads(v) for k, v in changelog}
    assert latest == {"a": 2, "b": 1}


async def test_new_worker_restores_table_from_changelog(
    kafka_bootstrap, topic_factory, faust_worker, tmp_path
):
    source, sink = await _topics(topic_factory)
    app_id = f"wc-{uuid.uuid4().hex[:8]}"
    env = {"WORDCOUNT_APP_ID": app_id, "WORDCOUNT_INPUT": source, "WORDCOUNT_OUTPUT": sink}

    first = faust_worker(APP, env={**env, "WORDCOUNT_DATADIR": str(tmp_path / "w1")}, name="w1")
    first.start()
    await produce(kafka_bootstrap, source, [(b"a", b""), (b"b", b""), (b"a", b"")])
    await read_records(kafka_bootstrap, sink, 3)
    assert first.stop() is not None

    # A new process with an empty in-memory store: it must rebuild counts from the changelog.
    second = faust_worker(APP, env={**env, "WORDCOUNT_DATADIR": str(tmp_path / "w2")}, name="w2")
    second.start()
    await produce(kafka_bootstrap, source, [(b"a", b""), (b"b", b"")])

    out = await read_records(kafka_bootstrap, sink, 5)
    assert _decoded(out)[3:] == [
        ("a", {"word": "a", "count": 3}),
        ("b", {"word": "b", "count": 2}),
    ]


async def test_rocksdb_store_recovers_into_a_fresh_directory(
    kafka_bootstrap, topic_factory, faust_worker, tmp_path
):
    source, sink = await _topics(topic_factory)
    app_id = f"wc-{uuid.uuid4().hex[:8]}"
    env = {
        "WORDCOUNT_APP_ID": app_id,
        "WORDCOUNT_INPUT": source,
        "WORDCOUNT_OUTPUT": sink,
        "WORDCOUNT_STORE": "rocksdb://",
    }
    first = faust_worker(APP, env={**env, "WORDCOUNT_DATADIR": str(tmp_path / "r1")}, name="r1")
    first.start()
    await produce(kafka_bootstrap, source, [(b"x", b""), (b"x", b"")])
    await read_records(kafka_bootstrap, sink, 2)
    first.stop()
    assert list((tmp_path / "r1").rglob("CURRENT")), "the first worker wrote no RocksDB store"

    second = faust_worker(APP, env={**env, "WORDCOUNT_DATADIR": str(tmp_path / "r2")}, name="r2")
    second.start()
    await produce(kafka_bootstrap, source, [(b"x", b"")])
    out = await read_records(kafka_bootstrap, sink, 3)
    assert _decoded(out)[2] == ("x", {"word": "x", "count": 3})


async def test_app_runs_in_process(kafka_bootstrap, topic_factory, tmp_path):
    source, sink = await _topics(topic_factory)
    app = make_app(
        app_id=f"wc-{uuid.uuid4().hex[:8]}",
        bootstrap=kafka_bootstrap,
        input_topic=source,
        output_topic=sink,
        datadir=str(tmp_path / "inproc"),
    )
    async with running_app(app):
        await produce(kafka_bootstrap, source, [(b"q", b""), (b"q", b"")])
        out = await read_records(kafka_bootstrap, sink, 2)
    assert _decoded(out) == [("q", {"word": "q", "count": 1}), ("q", {"word": "q", "count": 2})]
    assert app.counts["q"] == 2
