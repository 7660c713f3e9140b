"""Fetch the pinned Apache Kafka jars with Maven into a cache outside the repository.

The class path is resolved from ``pom.xml`` (next to this module) by
``mvn dependency:copy-dependencies``. The cache is ``$KAIROS_KAFKA_HOME/<version>/libs``
(default ``~/.cache/kairos/kafka/<version>/libs``); once complete it is reused without
running Maven at all, so later starts work offline.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from app.kafka.errors import KafkaInstallError

KAFKA_VERSION = "4.1.1"
"""The pinned Apache Kafka release (KRaft only; see README for why 4.1)."""

POM = Path(__file__).with_name("pom.xml")
_COMPLETE = ".complete"
_REQUIRED = ("kafka_2.13-", "kafka-server-", "kafka-clients-", "log4j-core-")


def kafka_home() -> Path:
    """Root of the jar cache: ``$KAIROS_KAFKA_HOME`` or ``~/.cache/kairos/kafka``."""
    env = os.environ.get("KAIROS_KAFKA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kairos" / "kafka"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return kafka_home() / version / "libs"


def java_executable() -> str:
    """Path of ``java`` (``$JAVA_HOME/bin/java`` first, then ``PATH``)."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if not found:
        raise KafkaInstallError(
            "java not found on PATH: Apache Kafka needs a JDK/JRE 17+; install one "
            "(e.g. `apt-get install -y openjdk-17-jre-headless`) or set JAVA_HOME."
        )
    return found


def is_installed(version: str = KAFKA_VERSION) -> bool:
    return (libs_dir(version) / _COMPLETE).is_file()


def ensure_kafka(version: str = KAFKA_VERSION, *, quiet: bool = True) -> Path:
    """Return the directory of the Kafka jars, fetching them with Maven if needed.

    Safe to call from several processes at once (a file lock serialises the download).
    """
    target = libs_dir(version)
    if (target / _COMPLETE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / _COMPLETE).is_file():  # another process finished meanwhile
            return target
        _download(version, target, quiet=quiet)
    return target


def _download(version: str, target: Path, *, quiet: bool) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise KafkaInstallError(
            f"mvn not found on PATH and the Kafka {version} jars are not cached in {target}: "
            "install Maven (e.g. `apt-get install -y maven`) or point KAIROS_KAFKA_HOME "
            "at a directory holding <version>/libs."
        )
    staging = Path(tempfile.mkdtemp(prefix="libs-", dir=target.parent))
    base = [
        mvn,
        "-B",
        "-f",
        str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
    ]
    if quiet:
        base.insert(2, "-q")
    # Offline first (uses ~/.m2 when it already holds everything), then online.
    result = subprocess.run([*base, "-o"], capture_output=True, text=True)
    if result.returncode != 0:
        result = subprocess.run(base, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise KafkaInstallError(
            f"fetching Apache Kafka {version} with Maven failed (exit {result.returncode}); "
            "check that Maven Central is reachable (proxy settings in ~/.m2/settings.xml) "
            f"and retry.\n--- mvn output (tail) ---\n{tail}"
        )
    names = sorted(p.name for p in staging.glob("*.jar"))
    missing = [r for r in _REQUIRED if not any(n.startswith(r) for n in names)]
    if missing:
        shutil.rmtree(staging, ignore_errors=True)
        raise KafkaInstallError(f"Maven resolved no jar for {missing}; is {POM} intact?")
    (staging / _COMPLETE).write_text("\n".join(names) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
