"""What stats' handler, views and jobs share in one process: settings, city, lists, time zone, metrics."""

from dataclasses import dataclass, field
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends

from libs.app import Runtime, get_runtime
from libs.config import City, RegistryConfig
from services.stats.metrics import BusinessMetrics
from services.stats.settings import StatsSettings


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs  # large: read once, and only when the dashboard asks

    script: str = get_plotlyjs()
    return script


@dataclass
class StatsRuntime(Runtime[StatsSettings]):
    city: City = field(kw_only=True)
    registry_config: RegistryConfig = field(kw_only=True)
    tz: ZoneInfo = field(init=False)
    metrics: BusinessMetrics = field(init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tz = ZoneInfo(self.settings.timezone)
        self.metrics = BusinessMetrics.register(self.registry, [d.code for d in self.city.departments])

    @staticmethod
    def plotly_js() -> str:
        """The Plotly bundle the dashboard draws with, from the pinned `plotly` package."""
        return _plotly_js()


StatsRuntimeDep = Annotated[StatsRuntime, Depends(get_runtime)]
