"""The Faust app a worker builds: safe web defaults, partition counts, no broker needed."""

from __future__ import annotations

from app.faust_app import create_runtime
from app.settings import Settings


def runtime_for(env: dict[str, str]):  # -> Runtime
    return create_runtime(Settings.from_env({"KAIROS_APP_ID": "wiring", **env}))


def test_web_binds_loopback_and_faust_table_views_are_off() -> None:
    rt = runtime_for({})
    conf = rt.app.conf
    assert (conf.web_bind, conf.web_port) == ("127.0.0.1", 6066)
    assert not conf.web_tables_enabled and not conf.web_router_enabled
    mounted = [prefix for prefix, _bp in rt.app.web.blueprints._enabled]
    assert "/table" not in mounted and "/router" not in mounted


def test_faust_views_only_when_enabled() -> None:
    rt = runtime_for({"KAIROS_WEB_FAUST_VIEWS": "true", "KAIROS_WEB_HOST": "0.0.0.0"})
    assert rt.app.conf.web_bind == "0.0.0.0"
    mounted = [prefix for prefix, _bp in rt.app.web.blueprints._enabled]
    assert "/table" in mounted and "/router" in mounted


def test_keyed_topic_and_changelogs_share_the_partition_count() -> None:
    rt = runtime_for({"KAIROS_PARTITIONS": "6", "KAIROS_REPLICATION_FACTOR": "3"})
    tables = rt.app.tables
    assert {name: t.partitions for name, t in tables.items()} == {"state": 6, "history": 6}
    assert tables["state"].changelog_topic.get_topic_name() == "wiring-state-changelog"
    (agent,) = rt.app.agents.values()
    (topic,) = agent.channel.topics
    assert topic == "wiring-keyed" and agent.channel.partitions == 6
    assert rt.provider.key_table_name() == "state"
    assert rt.app.conf.topic_replication_factor == 3


def test_exactly_once_and_store_reach_faust() -> None:
    rt = runtime_for({"KAIROS_PROCESSING_GUARANTEE": "exactly_once", "KAIROS_STORE": "rocksdb://"})
    assert rt.app.conf.processing_guarantee.value == "exactly_once"
    assert rt.app.conf.store.scheme == "rocksdb"


async def test_a_flush_sets_the_partial_matches_gauge() -> None:
    from app.metrics import METRICS
    from tests.unit.runtime.test_detect import A_THEN_B, batch

    rt = runtime_for({"KAIROS_PARTITIONS": "4"})
    assert rt.book.apply("a-then-b", A_THEN_B.format(version=1, first="A")).ok
    store: dict[bytes, bytes] = {}
    rt.detector.table = store  # a plain dict for the local lookups; the flush is faked below
    for p, msg in batch(
        [{"id": f"e{i}", "user": f"gauge{i}", "type": "A", "ts": i} for i in range(3)]
    ).items():
        rt.detector.handle(p, msg)
    for p in range(4):
        rt.detector.flush(p)
    rt.writer.on_flush()
    assert b'kairos_partial_matches{rule="a-then-b"} 3.0' in METRICS.render()
