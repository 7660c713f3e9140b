"""What the agents read from the configuration.

The agents never import ``app``: the arrows point ``app -> agents -> tables -> cep``. The app's
:class:`app.settings.Settings` satisfies :class:`RuntimeConfig` structurally, and tests may pass
any object with these attributes.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["RuntimeConfig"]


class RuntimeConfig(Protocol):
    """The settings the agents use (env names in docs/runtime.md)."""

    app_id: str
    partitions: int
    replication_factor: int
    rules_topic: str
    rules_status_topic: str
    rules_dir: str | None
    dlq_topic: str
    ingest_batch_max: int
    ingest_linger_ms: int  # ms the broker may hold the ingest's fetch while records flow
    tick_interval: float
    watermark_interval: float  # seconds; 0: watermarks only with the ticks
    session_timeout: float  # seconds: consumer-group session timeout (failover time)
    heartbeat_interval: float  # seconds

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for an aiokafka client."""
        ...
