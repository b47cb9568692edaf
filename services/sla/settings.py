"""SLA settings, from SLA_* environment variables."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import ServiceSettings


class SlaSettings(ServiceSettings):
    service_name: ClassVar[str] = "sla"
    model_config = SettingsConfigDict(env_prefix="SLA_", extra="ignore")

    http_port: int = 8003
    tick_seconds: float = Field(default=0.2, description="How often the scheduler looks for due thresholds.")
    fire_batch: int = Field(default=1000, description="Most clocks one scheduler pass claims.")
    lookahead_seconds: float = Field(
        default=0.5, description="Clocks due this soon are claimed and read ahead, then fired on the instant."
    )
    gauge_seconds: float = Field(default=15.0, description="How often sla_clocks_running is recounted.")
    publish_v1: bool = Field(
        default=False,
        description="Also write each clock's report to sla.events.v1, for readers not yet moved to sla.events.v2.",
    )
