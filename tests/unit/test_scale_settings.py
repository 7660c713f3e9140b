"""KAIROS_SESSION_TIMEOUT / KAIROS_HEARTBEAT_INTERVAL: parsed, validated, passed to Kafka."""

from __future__ import annotations

import pytest

from app.faust_app import _faust_app
from app.settings import Settings, SettingsError


def test_defaults_fail_over_within_seconds() -> None:
    s = Settings.from_env({})
    assert (s.session_timeout, s.heartbeat_interval) == (10.0, 3.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAIROS_SESSION_TIMEOUT": "0"},
            "KAIROS_SESSION_TIMEOUT must be in (0, 90] seconds (Faust's broker request timeout), "
            "got 0.0",
        ),
        (
            {"KAIROS_SESSION_TIMEOUT": "120"},
            "KAIROS_SESSION_TIMEOUT must be in (0, 90] seconds (Faust's broker request timeout), "
            "got 120.0",
        ),
        (
            {"KAIROS_HEARTBEAT_INTERVAL": "10"},
            "KAIROS_HEARTBEAT_INTERVAL must be > 0 and below KAIROS_SESSION_TIMEOUT "
            "(10.0 s; a third of it is usual), got 10.0",
        ),
        (
            {"KAIROS_HEARTBEAT_INTERVAL": "-1"},
            "KAIROS_HEARTBEAT_INTERVAL must be > 0 and below KAIROS_SESSION_TIMEOUT "
            "(10.0 s; a third of it is usual), got -1.0",
        ),
        ({"KAIROS_SESSION_TIMEOUT": "10s"}, "KAIROS_SESSION_TIMEOUT must be a number, got '10s'"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as exc:
        Settings.from_env(env)
    assert str(exc.value) == message


def test_faust_consumer_group_uses_them() -> None:
    s = Settings.from_env({"KAIROS_SESSION_TIMEOUT": "6", "KAIROS_HEARTBEAT_INTERVAL": "1.5"})
    conf = _faust_app(s).conf
    assert (conf.broker_session_timeout, conf.broker_heartbeat_interval) == (6.0, 1.5)
