"""A local Apache Kafka (KRaft) for development and tests: fetched with Maven, run as JVMs.

Public surface: :class:`KafkaCluster`, :func:`ensure_kafka`, :data:`KAFKA_VERSION` and the
errors. See README.md ("Local Kafka") for the settings and the environment variables.
"""

from app.kafka.cluster import KafkaCluster
from app.kafka.errors import KafkaInstallError, KafkaLauncherError, KafkaStartError
from app.kafka.install import KAFKA_VERSION, ensure_kafka, kafka_home

__all__ = [
    "KAFKA_VERSION",
    "KafkaCluster",
    "KafkaInstallError",
    "KafkaLauncherError",
    "KafkaStartError",
    "ensure_kafka",
    "kafka_home",
]
