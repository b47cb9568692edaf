"""Stats assembled: the city, the projecting consumer, the metrics, HTTP and the dashboard."""

from dataclasses import dataclass
from functools import cache
from zoneinfo import ZoneInfo

from fastapi import FastAPI

from libs.app import Runtime, create_service_app
from libs.config import City, load_city
from services.stats import handlers, scheduled, service, views
from services.stats.metrics import BusinessMetrics
from services.stats.settings import StatsSettings


@cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


@dataclass
class StatsRuntime(Runtime):
    city: City | None = None
    tz: ZoneInfo | None = None
    metrics: BusinessMetrics | None = None

    @staticmethod
    def plotly_js() -> str:
        return _plotly_js()


async def _startup(runtime: Runtime) -> None:
    await service.ensure_indexes(runtime.db)
    await service.prepare_days(runtime.db, runtime.tz, runtime.clock.now())
    scheduled.start(runtime)


def create_app(settings: StatsSettings | None = None, **runtime_options) -> FastAPI:
    """The stats service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or StatsSettings()
    city = load_city(settings.config_dir)
    runtime = StatsRuntime(settings=settings, city=city, tz=ZoneInfo(settings.timezone), **runtime_options)
    runtime.metrics = BusinessMetrics.register(runtime.registry, [d.code for d in city.departments])
    handlers.register(runtime)
    return create_service_app(
        runtime, title="Appeals stats",
        description="Live counts, the department rates, the daily report and the operator dashboard.",
        routers=[views.router], on_startup=_startup)
