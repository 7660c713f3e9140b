"""Settings from the environment: defaults, parsing, errors that name the variable."""

from __future__ import annotations

import dataclasses

import pytest

from app.settings import ENV_SETTINGS, Settings, SettingsError


def test_defaults_are_safe() -> None:
    s = Settings.from_env({})
    assert s.web_host == "127.0.0.1"
    assert s.web_port == 6066
    assert s.store == "memory://"
    assert s.processing_guarantee == "at_least_once"
    assert s.rules_topic == "kairos-rules"
    assert s.web_faust_views is False
    assert s.coalesced_writes is True  # at_least_once: a crash replays up to 0.5 s
    assert (
        Settings.from_env({"KAIROS_PROCESSING_GUARANTEE": "exactly_once"}).coalesced_writes is False
    )
    assert s.canonical_url == "http://127.0.0.1:6066"


def test_every_field_names_its_env_variable_once() -> None:
    names = [env for env, _default, _doc in ENV_SETTINGS]
    assert len(names) == len(set(names)) == len(dataclasses.fields(Settings))
    required = {
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_SECURITY_PROTOCOL",
        "KAFKA_SASL_MECHANISM",
        "KAFKA_SASL_USERNAME",
        "KAFKA_SASL_PASSWORD",
        "KAFKA_SSL_CAFILE",
        "KAIROS_APP_ID",
        "KAIROS_STORE",
        "KAIROS_DATA_DIR",
        "KAIROS_PARTITIONS",
        "KAIROS_REPLICATION_FACTOR",
        "KAIROS_STANDBY_REPLICAS",
        "KAIROS_PROCESSING_GUARANTEE",
        "KAIROS_WEB_PORT",
        "KAIROS_WEB_HOST",
        "KAIROS_WEB_CANONICAL_URL",
        "KAIROS_ADMIN_TOKEN",
        "KAIROS_READ_TOKEN",
        "KAIROS_RULES_DIR",
        "KAIROS_RULES_TOPIC",
        "KAIROS_LOG_LEVEL",
        "KAIROS_LOG_FORMAT",
    }
    assert required <= set(names)
    assert all(doc for _env, _default, doc in ENV_SETTINGS)


def test_parses_types_and_normalises_case() -> None:
    s = Settings.from_env(
        {
            "KAIROS_PARTITIONS": "12",
            "KAIROS_TICK_INTERVAL": "0.5",
            "KAIROS_WEB_FAUST_VIEWS": "true",
            "KAIROS_PROCESSING_GUARANTEE": "EXACTLY_ONCE",
            "KAIROS_LOG_LEVEL": "debug",
            "KAIROS_WEB_CANONICAL_URL": "http://kairos-0.kairos:6066",
        }
    )
    assert (s.partitions, s.tick_interval, s.web_faust_views) == (12, 0.5, True)
    assert s.exactly_once and s.log_level == "DEBUG"
    assert s.canonical_url == "http://kairos-0.kairos:6066"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KAIROS_PARTITIONS": "many"}, "KAIROS_PARTITIONS must be an integer, got 'many'"),
        ({"KAIROS_PARTITIONS": "0"}, "KAIROS_PARTITIONS must be >= 1, got 0"),
        (
            {"KAIROS_STORE": "redis://"},
            "KAIROS_STORE='redis://' is not supported; use memory:// or rocksdb://",
        ),
        (
            {"KAIROS_PROCESSING_GUARANTEE": "at_most_once"},
            "KAIROS_PROCESSING_GUARANTEE='at_most_once' is not one of: at_least_once, exactly_once",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD; set both",
        ),
        (
            {"KAIROS_WATERMARK_INTERVAL": "-1"},
            "KAIROS_WATERMARK_INTERVAL must be in [0, 60] seconds (0: watermarks only with the "
            "KAIROS_TICK_INTERVAL ticks), got -1.0",
        ),
        (
            {"KAIROS_WEB_FAUST_VIEWS": "maybe"},
            "KAIROS_WEB_FAUST_VIEWS must be true or false, got 'maybe'",
        ),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(env)
    assert str(exc.value) == message


def test_sasl_client_kwargs_and_redaction() -> None:
    s = Settings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "kairos",
            "KAFKA_SASL_PASSWORD": "s3cret",
            "KAIROS_ADMIN_TOKEN": "t0ken",
        }
    )
    kw = s.kafka_client_kwargs()
    assert kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("kairos", "s3cret")
    assert "ssl_context" not in kw
    red = s.redacted()
    assert red["sasl_password"] == "***" and red["admin_token"] == "***"
    assert "s3cret" not in repr(red)


def test_coalesced_writes_are_a_setting() -> None:
    assert Settings.from_env({"KAIROS_COALESCE_STATE_WRITES": "on"}).coalesce_state_writes
    assert not Settings.from_env({"KAIROS_COALESCE_STATE_WRITES": "0"}).coalesce_state_writes
    assert Settings.from_env({"KAIROS_COALESCE_STATE_WRITES": "on"}).coalesced_writes
    eos = {"KAIROS_COALESCE_STATE_WRITES": "on", "KAIROS_PROCESSING_GUARANTEE": "exactly_once"}
    assert not Settings.from_env(eos).coalesced_writes  # exactly_once writes per message
    with pytest.raises(SettingsError, match="KAIROS_COALESCE_STATE_WRITES must be true or false"):
        Settings.from_env({"KAIROS_COALESCE_STATE_WRITES": "sometimes"})
