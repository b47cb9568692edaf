"""Where Kafka is and who a client is there, in the forms aiokafka, FastStream and librdkafka take."""

from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from libs.settings import ServiceSettings

# How every producer of the platform writes: each record acknowledged by every in-sync replica, and idempotent, so a
# batch resent after a lost answer is written once (the broker knows it by the producer's id and sequence number).
# Kafka 3.0 and later grant idempotence to any principal that may write the topic (KIP-679): no cluster ACL needed.
DURABLE_WRITES: dict[str, Any] = {"acks": "all", "enable_idempotence": True}


@dataclass(frozen=True)
class KafkaAccess:
    """Where Kafka is and who a client is there: the bootstrap servers, the security protocol and, with SASL, the
    principal's mechanism and credentials. Every client of the platform connects through one."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ssl_cafile: str | None = None

    @classmethod
    def of(cls, settings: ServiceSettings) -> "KafkaAccess":
        """The service's own access, from its settings."""
        return cls(
            settings.kafka_bootstrap_servers,
            settings.kafka_security_protocol,
            settings.kafka_sasl_mechanism,
            settings.kafka_sasl_username,
            settings.kafka_sasl_password.get_secret_value(),
            str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        )

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def ssl(self) -> bool:
        return self.security_protocol in ("SASL_SSL", "SSL")

    def as_principal(self, username: str, password: str) -> "KafkaAccess":
        """The same cluster, as another principal."""
        return replace(self, username=username, password=password)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's clients (consumer, producer, admin)."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl:
            options.update(
                sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username, sasl_plain_password=self.password
            )
        if self.ssl:
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return options

    def producer_options(self, client_id: str) -> dict[str, Any]:
        """Keyword arguments of an aiokafka producer that writes as the platform does (`DURABLE_WRITES`)."""
        return {**self.client_options(), **DURABLE_WRITES, "client_id": client_id}

    def security(self) -> BaseSecurity | None:
        """FastStream's form of the same."""
        ssl = create_ssl_context(cafile=self.ssl_cafile) if self.ssl else None
        if not self.sasl:
            return BaseSecurity(ssl_context=ssl) if ssl else None
        kind = {"SCRAM-SHA-512": SASLScram512, "SCRAM-SHA-256": SASLScram256, "PLAIN": SASLPlaintext}
        return kind[self.sasl_mechanism](username=self.username, password=self.password, ssl_context=ssl)

    def librdkafka(self) -> dict[str, str]:
        """The same for librdkafka (confluent-kafka's admin client, kcat's -X options)."""
        config = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol.lower()}
        if self.sasl:
            config.update(
                {"sasl.mechanisms": self.sasl_mechanism, "sasl.username": self.username, "sasl.password": self.password}
            )
        if self.ssl and self.ssl_cafile:
            config["ssl.ca.location"] = self.ssl_cafile
        return config


def access_of(target: "KafkaAccess | str") -> KafkaAccess:
    """`target` as an access: a bare bootstrap address is a PLAINTEXT broker (the integration tests')."""
    return target if isinstance(target, KafkaAccess) else KafkaAccess(target)
