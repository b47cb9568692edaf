"""Router settings, from ROUTER_* environment variables."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import ServiceSettings


class RouterSettings(ServiceSettings):
    service_name: ClassVar[str] = "router"
    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore")

    http_port: int = 8002
    auto_close_days: int = Field(default=7, description="A resolved appeal closes after this many silent days.")
    sweep_interval_seconds: float = Field(default=5.0, description="How often outboxes and auto-closes are checked.")
