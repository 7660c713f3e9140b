"""exactly_once discards a keyed partition's local table state (an aborted transaction's writes)
so that Faust recovers it from the changelog's start: with the memory and the rocksdb store."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.types import TP

from agents.wire import partition_for
from app.faust_app import _discard_local_state
from app.settings import Settings
from tables.definitions import define_state_table

PARTS = 4
GONE = 2


def _keys() -> tuple[list[bytes], list[bytes]]:
    """Keys of partition GONE (the progress record among them) and keys of other partitions."""
    users = [f"user-{i}" for i in range(40)]
    gone = [u.encode() for u in users if partition_for(u, PARTS) == GONE]
    kept = [u.encode() for u in users if partition_for(u, PARTS) != GONE]
    return [*gone, b"\x00p%d" % GONE], [*kept, b"\x00p0"]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_only_the_partitions_keys_and_recovery_offset_go(store: str, tmp_path: Path) -> None:
    app = faust.App(
        "discard-test", store=store, datadir=str(tmp_path), broker="kafka://127.0.0.1:1"
    )
    table = define_state_table(app, PARTS)  # the worker's own table definition
    data = table.data
    gone, kept = _keys()
    changelog = table.changelog_topic.get_topic_name()
    by_partition: dict[int, list[bytes]] = {}
    for key in gone + kept:
        p = (
            GONE
            if key in gone
            else (0 if key.startswith(b"\x00p") else partition_for(key.decode(), PARTS))
        )
        by_partition.setdefault(p, []).append(key)
    if store == "rocksdb://":
        for p, keys in by_partition.items():
            db = data._db_for_partition(p)
            for key in keys:
                db.put(key, b"v")
            data.set_persisted_offset(TP(changelog, p), 41)
            for key in keys:
                assert data[key] == b"v"  # fills Faust's key -> partition cache
    else:
        for key in gone + kept:
            data[key] = b"v"
    recovery = app.tables.recovery
    for p in (GONE, 0):
        recovery.active_offsets[TP(changelog, p)] = 41
    runtime: Any = SimpleNamespace(settings=Settings(store=store, partitions=PARTS), app=app)

    _discard_local_state(runtime, {"state": table}, GONE)

    assert all(key not in data for key in gone)
    assert all(data[key] == b"v" for key in kept)
    assert TP(changelog, GONE) not in recovery.active_offsets
    assert recovery.active_offsets[TP(changelog, 0)] == 41
    if store == "rocksdb://":
        # Faust's next recovery of the partition starts from the changelog's start
        assert data.persisted_offset(TP(changelog, GONE)) is None
        assert data.persisted_offset(TP(changelog, 0)) == 41
        assert GONE not in set(data._key_index.values())
