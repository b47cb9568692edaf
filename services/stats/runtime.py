"""What stats' handler, views and jobs share in one process: settings, city, lists, assessment, time zone, metrics."""

from dataclasses import dataclass, field
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends

from libs.app import Runtime, get_runtime
from libs.calendars import load_calendars
from libs.config import AssessmentConfig, City, ConfigError, RegistryConfig
from services.stats.metrics import BusinessMetrics, ScorecardMetrics
from services.stats.settings import StatsSettings


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs  # large: read once, and only when the dashboard asks

    script: str = get_plotlyjs()
    return script


def city_zone(settings: StatsSettings, city: City) -> ZoneInfo:
    """The city's time zone, its coordinating office's calendar's: stats' days and months are the city's.

    Raises ConfigError when calendars.yaml is invalid or STATS_TIMEZONE names another zone.
    """
    zone = load_calendars(settings.config_dir).of_department(city, city.coordinating_office).zone
    if settings.timezone is not None and settings.timezone != zone.key:
        raise ConfigError(
            f"STATS_TIMEZONE={settings.timezone!r} is not the city's time zone {zone.key!r} (config/calendars.yaml, "
            "the coordinating office's calendar): stats counts days and months in the city's; unset it"
        )
    return zone


@dataclass
class StatsRuntime(Runtime[StatsSettings]):
    city: City = field(kw_only=True)
    registry_config: RegistryConfig = field(kw_only=True)
    assessment: AssessmentConfig = field(kw_only=True)
    tz: ZoneInfo = field(init=False)
    metrics: BusinessMetrics = field(init=False)
    scorecard_metrics: ScorecardMetrics = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tz = city_zone(self.settings, self.city)
        departments = [d.code for d in self.city.departments]
        self.metrics = BusinessMetrics.register(self.registry, departments)
        self.scorecard_metrics = ScorecardMetrics.register(self.registry, departments)

    @staticmethod
    def plotly_js() -> str:
        """The Plotly bundle the dashboard draws with, from the pinned `plotly` package."""
        return _plotly_js()


StatsRuntimeDep = Annotated[StatsRuntime, Depends(get_runtime)]
