"""Worker settings: one frozen object read from the environment.

Every field names its environment variable in its metadata; :data:`ENV_SETTINGS` lists
``(env name, default, doc)`` for the README, the Helm chart and its test.

    >>> settings = Settings.from_env({"KAIROS_PARTITIONS": "12"})
    >>> settings.partitions
    12
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ENV_SETTINGS", "Settings", "SettingsError"]

_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_GUARANTEES = ("at_least_once", "exactly_once")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Faust refuses a session timeout above its broker_request_timeout (90 s by default).
_MAX_SESSION_TIMEOUT = 90.0


class SettingsError(ValueError):
    """An environment variable holds a value Kairos cannot use."""


def _env(name: str, default: Any, doc: str) -> Any:
    return field(default=default, metadata={"env": name, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything a worker reads from the environment (see each field's env name)."""

    bootstrap_servers: str = _env(
        "KAFKA_BOOTSTRAP_SERVERS",
        "127.0.0.1:9092",
        "Kafka bootstrap servers, comma separated host:port.",
    )
    security_protocol: str = _env(
        "KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    sasl_mechanism: str = _env(
        "KAFKA_SASL_MECHANISM", "PLAIN", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL only)."
    )
    sasl_username: str | None = _env("KAFKA_SASL_USERNAME", None, "SASL user name.")
    sasl_password: str | None = _env("KAFKA_SASL_PASSWORD", None, "SASL password.")
    ssl_cafile: str | None = _env(
        "KAFKA_SSL_CAFILE", None, "CA bundle (PEM) to verify the brokers; system CAs when unset."
    )
    app_id: str = _env(
        "KAIROS_APP_ID",
        "kairos",
        "Application id: consumer group, and prefix of the internal and changelog topics.",
    )
    store: str = _env(
        "KAIROS_STORE",
        "memory://",
        "Table store: memory:// (rebuilt from the changelog at start) or rocksdb:// (rocksdict, on disk).",
    )
    data_dir: str = _env(
        "KAIROS_DATA_DIR",
        "/tmp/kairos-data",
        "Directory for local table state (rocksdb://); one per worker on a host.",
    )
    partitions: int = _env(
        "KAIROS_PARTITIONS",
        8,
        "Partitions of the internal keyed topic and the changelog topics (must not change later).",
    )
    replication_factor: int = _env(
        "KAIROS_REPLICATION_FACTOR", 1, "Replication factor of the topics Kairos creates."
    )
    standby_replicas: int = _env(
        "KAIROS_STANDBY_REPLICAS",
        1,
        "Standby copies of each table partition kept warm on other workers (faster failover).",
    )
    processing_guarantee: str = _env(
        "KAIROS_PROCESSING_GUARANTEE",
        "at_least_once",
        "at_least_once, or exactly_once (Kafka transactions; needs 3 brokers).",
    )
    session_timeout: float = _env(
        "KAIROS_SESSION_TIMEOUT",
        10.0,
        "Seconds without a heartbeat after which Kafka drops a worker from the consumer groups "
        "and moves its partitions (failover time after a crash); within the broker's "
        "group.min/max.session.timeout.ms (6 s to 30 min by default).",
    )
    heartbeat_interval: float = _env(
        "KAIROS_HEARTBEAT_INTERVAL",
        3.0,
        "Seconds between a worker's heartbeats to its group coordinator; below "
        "KAIROS_SESSION_TIMEOUT (a third of it is usual).",
    )
    web_port: int = _env("KAIROS_WEB_PORT", 6066, "HTTP port of the web view.")
    web_host: str = _env(
        "KAIROS_WEB_HOST",
        "127.0.0.1",
        "Interface the web view binds to; set 0.0.0.0 in a container.",
    )
    web_canonical_url: str | None = _env(
        "KAIROS_WEB_CANONICAL_URL",
        None,
        "URL other workers use to reach this one (key routing); http://HOST:PORT when unset.",
    )
    web_faust_views: bool = _env(
        "KAIROS_WEB_FAUST_VIEWS",
        False,
        "Serve Faust's built-in /table and /router views (they dump raw table data): off by default.",
    )
    recovery_stall_seconds: float = _env(
        "KAIROS_RECOVERY_STALL_SECONDS",
        300.0,
        "Not ready for longer than this: /readyz and the log report table recovery as stalled.",
    )
    route_timeout_seconds: float = _env(
        "KAIROS_ROUTE_TIMEOUT_SECONDS",
        5.0,
        "How long a key lookup forwarded to the owning worker may take.",
    )
    admin_token: str | None = _env(
        "KAIROS_ADMIN_TOKEN",
        None,
        "Bearer token for POST/DELETE /api/rules; rule changes over HTTP are off when unset.",
    )
    read_token: str | None = _env(
        "KAIROS_READ_TOKEN", None, "Bearer token required for reads; reads are open when unset."
    )
    rules_dir: str | None = _env(
        "KAIROS_RULES_DIR",
        None,
        "Rule files (a directory or a file) validated and published to the rules topic at start.",
    )
    rules_topic: str = _env(
        "KAIROS_RULES_TOPIC", "kairos-rules", "Compacted topic holding the rules (key = name)."
    )
    rules_status_topic: str = _env(
        "KAIROS_RULES_STATUS_TOPIC",
        "kairos-rules-status",
        "Topic receiving each worker's verdict on every rule version (applied or rejected).",
    )
    dlq_topic: str = _env(
        "KAIROS_DLQ_TOPIC", "kairos-dlq", "Dead-letter topic for input Kairos cannot use."
    )
    tick_interval: float = _env(
        "KAIROS_TICK_INTERVAL",
        1.0,
        "Seconds between time ticks (processing-time timeouts, idle watermarks).",
    )
    watermark_interval: float = _env(
        "KAIROS_WATERMARK_INTERVAL",
        0.2,
        "Seconds between watermark ticks: while event times advance, a tick with the ingest's "
        "max event times goes to every keyed partition at most this often (as Flink's "
        "autoWatermarkInterval). Bounds how long an event-time match waits for the watermark; "
        "0, or a value above KAIROS_TICK_INTERVAL, leaves only the KAIROS_TICK_INTERVAL ticks.",
    )
    source_idle_timeout: float = _env(
        "KAIROS_SOURCE_IDLE_TIMEOUT",
        5.0,
        "Seconds without events after which a source partition that its ingest has read to "
        "the end stops holding a rule's event-time watermark back (a stopped ingest's "
        "partitions keep holding it).",
    )
    history_size: int = _env(
        "KAIROS_HISTORY_SIZE", 20, "Recent detections kept per key for the web view."
    )
    coalesce_state_writes: bool = _env(
        "KAIROS_COALESCE_STATE_WRITES",
        True,
        "at_least_once: write each key's state once per 0.5 s or 500 keyed messages instead of "
        "after every message (fewer changelog records, more events per CPU second; a crash "
        "replays up to that much; false: after every message). exactly_once always writes "
        "per message.",
    )
    ingest_batch_max: int = _env(
        "KAIROS_INGEST_BATCH_MAX",
        2000,
        "Most events the ingest reads per poll (each poll becomes one message per partition).",
    )
    ingest_linger_ms: int = _env(
        "KAIROS_INGEST_LINGER_MS",
        10,
        "While records flow, let the broker hold each of the ingest's fetches this many ms to "
        "gather more records into one poll (fetch.max.wait.ms with a large fetch.min.bytes): "
        "fewer polls and keyed messages per event, for up to this much latency. 0: the broker "
        "answers as soon as a record is there.",
    )
    log_level: str = _env("KAIROS_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR.")
    log_format: str = _env(
        "KAIROS_LOG_FORMAT", "json", "json (one object per line) or text (for a terminal)."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise :class:`SettingsError` naming the first unusable value."""
        _choice("KAFKA_SECURITY_PROTOCOL", self.security_protocol, _PROTOCOLS)
        if self.security_protocol.startswith("SASL"):
            _choice("KAFKA_SASL_MECHANISM", self.sasl_mechanism, _MECHANISMS)
            if not self.sasl_username or self.sasl_password is None:
                raise SettingsError(
                    f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                    "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD; set both"
                )
        _choice("KAIROS_PROCESSING_GUARANTEE", self.processing_guarantee, _GUARANTEES)
        _choice("KAIROS_LOG_LEVEL", self.log_level.upper(), _LOG_LEVELS)
        _choice("KAIROS_LOG_FORMAT", self.log_format, ("json", "text"))
        if not (self.store.startswith("memory://") or self.store.startswith("rocksdb://")):
            raise SettingsError(
                f"KAIROS_STORE={self.store!r} is not supported; use memory:// or rocksdb://"
            )
        for env, value in (
            ("KAIROS_PARTITIONS", self.partitions),
            ("KAIROS_REPLICATION_FACTOR", self.replication_factor),
            ("KAIROS_HISTORY_SIZE", self.history_size),
            ("KAIROS_INGEST_BATCH_MAX", self.ingest_batch_max),
        ):
            if value < 1:
                raise SettingsError(f"{env} must be >= 1, got {value}")
        if self.ingest_linger_ms < 0:
            raise SettingsError(
                f"KAIROS_INGEST_LINGER_MS must be >= 0 (0: no linger), got {self.ingest_linger_ms}"
            )
        if self.standby_replicas < 0:
            raise SettingsError(
                f"KAIROS_STANDBY_REPLICAS must be >= 0, got {self.standby_replicas}"
            )
        if not 0 < self.session_timeout <= _MAX_SESSION_TIMEOUT:
            raise SettingsError(
                f"KAIROS_SESSION_TIMEOUT must be in (0, {_MAX_SESSION_TIMEOUT:.0f}] seconds "
                f"(Faust's broker request timeout), got {self.session_timeout}"
            )
        if not 0 < self.heartbeat_interval < self.session_timeout:
            raise SettingsError(
                f"KAIROS_HEARTBEAT_INTERVAL must be > 0 and below KAIROS_SESSION_TIMEOUT "
                f"({self.session_timeout} s; a third of it is usual), got {self.heartbeat_interval}"
            )
        if not 0 < self.tick_interval <= 60:
            raise SettingsError(
                f"KAIROS_TICK_INTERVAL must be in (0, 60] seconds, got {self.tick_interval}"
            )
        if not 0 <= self.watermark_interval <= 60:
            raise SettingsError(
                "KAIROS_WATERMARK_INTERVAL must be in [0, 60] seconds (0: watermarks only with "
                f"the KAIROS_TICK_INTERVAL ticks), got {self.watermark_interval}"
            )
        if not 0 < self.web_port < 65536:
            raise SettingsError(f"KAIROS_WEB_PORT must be a TCP port, got {self.web_port}")

    @property
    def canonical_url(self) -> str:
        """The URL other workers route key requests to."""
        return self.web_canonical_url or f"http://{self.web_host}:{self.web_port}"

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    @property
    def coalesced_writes(self) -> bool:
        """Whether the detect agent coalesces its table writes: asked for, and at_least_once
        (exactly_once writes every message inside its transaction)."""
        return self.coalesce_state_writes and not self.exactly_once

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for SSL / SASL_SSL, else None."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile)

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for an aiokafka client."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.security_protocol.startswith("SASL"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def redacted(self) -> dict[str, Any]:
        """All settings with secrets masked, for the start-up log line."""
        out = dataclasses.asdict(self)
        for name in ("sasl_password", "admin_token", "read_token"):
            if out[name]:
                out[name] = "***"
        return out


def _choice(env: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(f"{env}={value!r} is not one of: {', '.join(allowed)}")


def _parse(f: dataclasses.Field[Any], raw: str) -> Any:
    env = f.metadata["env"]
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{env} must be an integer, got {raw!r}") from None
    if kind == "float":
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{env} must be a number, got {raw!r}") from None
    if kind == "bool":
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{env} must be true or false, got {raw!r}")
    if env in ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAIROS_LOG_LEVEL"):
        return raw.strip().upper()
    if env in ("KAIROS_PROCESSING_GUARANTEE", "KAIROS_LOG_FORMAT"):
        return raw.strip().lower()
    return raw


#: ``(env name, default, doc)`` of every setting, in declaration order.
ENV_SETTINGS: list[tuple[str, Any, str]] = [
    (f.metadata["env"], f.default, f.metadata["doc"]) for f in dataclasses.fields(Settings)
]
