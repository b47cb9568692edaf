"""Notify settings, from NOTIFY_* environment variables."""

from ipaddress import IPv4Network, IPv6Network
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import DEV_SECRET, ServiceSettings


class NotifySettings(ServiceSettings):
    service_name: ClassVar[str] = "notify"
    model_config = SettingsConfigDict(env_prefix="NOTIFY_", extra="ignore")

    http_port: int = 8004
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_sender: str = "appeals-platform@example.org"
    smtp_connections: int = Field(
        default=8, ge=1, description="SMTP connections kept open and reused: at most this many mails in flight."
    )
    sms_endpoint: str = Field(default="", description="SMS provider's HTTP endpoint (JSON POST).")
    wechat_endpoint: str = Field(default="", description="WeChat template-message endpoint (JSON POST).")
    provider_api_key_secret: str = Field(default=DEV_SECRET, description="Bearer token for the SMS/WeChat providers.")
    status_url: str = Field(
        default="http://127.0.0.1:8007/appeals/{appeal_id}",
        description="Where companies follow an appeal whose submission carried no link of its own (intake puts "
        "one with its token on each); {appeal_id} is filled in.",
    )
    webhook_allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default=[],
        description="Networks a webhook may point into although they are not public (private, loopback, "
        "link-local; never an unspecified or multicast address), as a JSON list of CIDRs: the government "
        "extranet where department systems sit; loopback in the embedded stack and the tests. Plain http is "
        "accepted only for a target inside one of them; any other webhook must be https and resolve to a public "
        "address. Checked when a webhook is subscribed and again at every delivery, on the address the "
        "connection then goes to.",
        examples=[["10.20.0.0/16", "fd12:3456::/48"]],
    )
    max_attempts: int = Field(default=5, description="Attempts before a notification is marked failed.")
    retry_base_seconds: float = Field(default=1.0, description="Backoff base: waits grow as base * 2^n, jittered.")
    send_timeout_seconds: float = 10.0
    tick_seconds: float = 0.2
    claim_seconds: float = Field(default=60.0, description="How long a crashed sender's claim blocks a resend.")

    @property
    def provider_api_key(self) -> str:
        return self.provider_api_key_secret
