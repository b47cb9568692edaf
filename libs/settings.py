"""Settings base: every service reads its own prefix from the environment (e.g. ROUTER_MONGODB_URI)."""

import ipaddress
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"
# The shortest secret the platform keys its own tokens, cookies and digests with outside dev: 256 bits, the size
# of the HMAC-SHA-256 key, so that the secret and not its length bounds what guessing it costs.
MIN_SECRET_BYTES = 32
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _proxy_addresses(value: str) -> str:
    """Comma-separated IP addresses and networks, or `*`; anything else stops the start (uvicorn would ignore it)."""
    items = [item.strip() for item in value.split(",") if item.strip()]
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
    return ",".join(items)


class ServiceSettings(BaseSettings):
    """Common settings; subclasses set `service_name` and `model_config` with their prefix."""

    service_name: ClassVar[str] = "service"
    # A refused setting's error never shows what was given: settings hold secrets, and pydantic's message would
    # otherwise end with the input (the environment's values).
    model_config = SettingsConfigDict(extra="ignore", hide_input_in_errors=True)
    # Settings named `...secret` that hold a credential another party issued (the SMS and WeChat providers' token):
    # its length is that party's choice, so outside dev it need only be non-empty. Every other `...secret` is one
    # the platform generates, and holds at least MIN_SECRET_BYTES. Settings named `...password` (SMTP, Kafka) are
    # third parties' too.
    third_party_secrets: ClassVar[frozenset[str]] = frozenset({"provider_api_key_secret"})

    environment: Literal["dev", "test", "prod"] = Field(
        default="dev", description="dev allows demo secrets; test and prod refuse them."
    )
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    forwarded_allow_ips: Annotated[str, AfterValidator(_proxy_addresses)] = Field(
        default="",
        description="The proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: comma-separated IP "
        "addresses or networks (the HTTPS proxy or ingress in front of this service). Empty: none, and a client's "
        "address is the peer of its connection whatever headers it sends.",
    )
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        default="PLAINTEXT",
        description="How the service reaches Kafka: SASL_SSL in production, SASL_PLAINTEXT in the embedded stack "
        "(loopback only), PLAINTEXT only for a broker nobody else can reach.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_sasl_username: str = Field(default="", description="The service's Kafka principal (User:<name>).")
    kafka_sasl_password: SecretStr = Field(default=SecretStr(""), description="Its SCRAM password.")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="CA bundle that signed the brokers' certificates (SASL_SSL, SSL); none: the system's."
    )
    mongodb_uri: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = ""
    mongodb_max_idle_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A pooled database connection idle this long is closed by the client, before a server or a "
        "load balancer drops it unseen (SecantusDB after 300 s) and a write on it fails.",
    )
    config_dir: Path = PROJECT_ROOT / "config"
    api_keys_file: Path | None = Field(
        default=None, description="JSON file of hashed, scoped API keys (see libs/auth.py)."
    )
    log_level: str = "INFO"
    consumer_group: str = ""
    handler_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=240,
        description="A consumer's handler still waiting after this long is cancelled and its message or batch "
        "retried; under Kafka's max.poll.interval (300 s), so a stuck await never costs the group.",
    )

    handler_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="A record whose handler fails this many times, for a reason other than an unreachable database "
        "or broker or a timeout, goes to its topic's .dlq with the reason, and its partition moves on.",
    )
    handler_retry_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="The pause before a failed record's second attempt; it doubles for each later one, up to 30 s.",
    )

    @model_validator(mode="after")
    def _sasl_needs_a_principal(self) -> "ServiceSettings":
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password.get_secret_value()
        ):
            raise ValueError(
                f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_sasl_username and "
                "kafka_sasl_password (the service's principal on Kafka)"
            )
        return self

    @model_validator(mode="after")
    def _defaults_from_service_name(self) -> "ServiceSettings":
        if not self.mongodb_database:
            self.mongodb_database = self.service_name
        if not self.consumer_group:
            self.consumer_group = self.service_name
        return self

    @model_validator(mode="after")
    def _refuse_dev_secrets_outside_dev(self) -> "ServiceSettings":
        """Outside dev: no demo secret, no empty credential, no secret of the platform's own under 32 bytes.

        The message names each refused setting and its length, never its value.
        """
        if self.environment == "dev":
            return self
        refused = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
            if not isinstance(value, str):
                continue
            third_party = name in self.third_party_secrets or name.endswith("password")
            if value == DEV_SECRET and (third_party or name.endswith("secret")):
                refused.append(f"{name} still has the development default; set a real secret")
            elif third_party:
                if not value and name in self.model_fields_set:
                    refused.append(f"{name} is set but empty")
            elif name.endswith("secret") and len(value.encode()) < MIN_SECRET_BYTES:
                size = f"{len(value.encode())} bytes" if value else "empty"
                refused.append(
                    f"{name} is {size}; it needs at least {MIN_SECRET_BYTES} random bytes "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(32))' makes one of 43)"
                )
        if refused:
            raise ValueError(f"for environment {self.environment!r}: " + "; ".join(refused))
        if self.api_keys_file is None:
            raise ValueError(f"api_keys_file must be set for environment {self.environment!r}")
        return self
