"""Stats assembled: the city, the projecting consumer, the metrics, HTTP and the dashboard."""

from typing import Any

from fastapi import FastAPI

from libs import openapi
from libs.app import create_service_app
from libs.config import load_assessment, load_city, load_registry_config
from services.stats import handlers, scheduled, service, views
from services.stats.appeals import NO_LIST
from services.stats.runtime import StatsRuntime
from services.stats.settings import StatsSettings


async def _startup(runtime: StatsRuntime) -> None:
    await service.ensure_indexes(runtime.db)
    await service.prepare_days(runtime.db, runtime.tz, runtime.clock.now())
    scheduled.start(runtime)


def create_app(settings: StatsSettings | None = None, **runtime_options: Any) -> FastAPI:
    """The stats service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or StatsSettings()
    city = load_city(settings.config_dir)
    runtime = StatsRuntime(
        settings=settings,
        city=city,
        registry_config=load_registry_config(settings.config_dir, city),
        assessment=load_assessment(settings.config_dir, city),
        **runtime_options,
    )
    handlers.register(runtime)
    app = create_service_app(
        runtime,
        title="Appeals stats",
        description="Live counts, the department rates, the city's monthly scorecard, the daily and monthly "
        "reports and the operator dashboard.",
        routers=[views.router],
        on_startup=_startup,
    )
    lists = [entry.id for entry in runtime.registry_config.lists] + [NO_LIST]
    openapi.edit(app, openapi.parameter_of("/v1/stats/companies", "get", "list", lists))
    return app
