"""Errors of the local Kafka launcher.

KafkaLauncherError          anything that stops the launcher; the message says what to do
├── KafkaInstallError       java/mvn missing, or the jars could not be fetched
└── KafkaStartError         a broker did not come up (carries the tail of its log)
"""

from __future__ import annotations


class KafkaLauncherError(RuntimeError):
    """The local Kafka could not be installed, started or stopped."""


class KafkaInstallError(KafkaLauncherError):
    """``java`` or ``mvn`` is missing, or the Kafka jars could not be fetched."""


class KafkaStartError(KafkaLauncherError):
    """A broker process exited or did not become ready in time."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        self.log_tail = log_tail
        full = message if not log_tail else f"{message}\n--- broker log (tail) ---\n{log_tail}"
        super().__init__(full)
