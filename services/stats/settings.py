"""Stats settings, from STATS_* environment variables."""

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from libs.settings import ServiceSettings


class StatsSettings(ServiceSettings):
    service_name: ClassVar[str] = "stats"
    model_config = SettingsConfigDict(env_prefix="STATS_", extra="ignore")

    http_port: int = 8005
    timezone: str | None = Field(
        default=None,
        description=(
            "Days, months, day buckets and report wording follow the city's time zone, its coordinating office's "
            "calendar's (config/calendars.yaml); when set, this must name the same zone. After the zone changes, "
            "periods are read hour by hour until a rebuild."
        ),
    )
    min_volume: int = Field(default=10, ge=1, description="Assignments a department needs in a period to be ranked.")
    batch_size: int = Field(default=500, ge=1, description="Most events projected in one batch.")
    metrics_refresh_seconds: float = Field(default=2.0, description="How often the business metrics are reread.")
    scorecard_refresh_seconds: float = Field(
        default=30.0, gt=0, description="How often this month's scorecard behind its metrics is computed again."
    )
