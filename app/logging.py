"""Structured logs: one JSON object per line (or plain text for a terminal).

    >>> configure("INFO", "json")
    >>> logging.getLogger("kairos.detect").info("rule applied", extra={"rule": "r", "version": 2})
    {"ts": "...", "level": "INFO", "logger": "kairos.detect", "msg": "rule applied", "rule": "r", "version": 2}

Fields passed with ``extra=`` are kept as top-level keys.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure", "logging_config"]

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: ts, level, logger, msg, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` mapping (Faust's ``logging_config`` setting)."""
    formatter = (
        {"()": JsonFormatter}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"kairos": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "kairos",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # Faust and aiokafka are chatty at INFO about every rebalance step.
        "loggers": {
            "aiokafka": {"level": "WARNING"},
            "faust": {"level": "WARNING" if level.upper() == "INFO" else level.upper()},
            "mode": {"level": "WARNING" if level.upper() == "INFO" else level.upper()},
        },
    }


def configure(level: str = "INFO", fmt: str = "json") -> None:
    """Install the Kairos handler on the root logger (idempotent)."""
    import logging.config

    logging.config.dictConfig(logging_config(level, fmt))
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(exc_type: Any, exc: BaseException, tb: Any) -> None:
    logging.getLogger("kairos").critical("uncaught exception", exc_info=(exc_type, exc, tb))
