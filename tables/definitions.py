"""The worker's Faust tables: ``state`` (engine state and context per key) and ``history``.

Both are keyed by the entity key (utf-8 bytes) and hold opaque bytes (``state``:
:mod:`tables.codec`; ``history``: a JSON list of CloudEvents), with ``partitions`` changelog
partitions: as many as the keyed topic, which Faust requires of a table fed by that topic.
The detect agent writes them through their local store and changelog topic directly (see
:mod:`agents.writer`), not with ``table[key] = value``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HISTORY_TABLE", "STATE_TABLE", "define_history_table", "define_state_table"]

STATE_TABLE = "state"
HISTORY_TABLE = "history"


def define_state_table(app: Any, partitions: int) -> Any:
    """Define the ``state`` table on the Faust ``app``."""
    return app.Table(
        STATE_TABLE,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="Engine state and context per entity key.",
    )


def define_history_table(app: Any, partitions: int) -> Any:
    """Define the ``history`` table on the Faust ``app``."""
    return app.Table(
        HISTORY_TABLE,
        partitions=partitions,
        key_type=bytes,
        value_type=bytes,
        help="Recent detections (CloudEvents) per entity key.",
    )
