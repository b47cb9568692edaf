"""SLA assembled: calendars and profiles, the lifecycle consumer, the scheduler, HTTP."""

from typing import Any

from fastapi import FastAPI

from libs.app import create_service_app
from libs.calendars import load_calendars
from libs.config import config_error, load_city, load_sla_config
from services.sla import handlers, scheduled, service, views
from services.sla.runtime import SlaRuntime
from services.sla.service import SlaBook
from services.sla.settings import SlaSettings


async def _startup(runtime: SlaRuntime) -> None:
    await service.ensure_indexes(runtime.db)
    scheduled.start(runtime)


def create_app(settings: SlaSettings | None = None, **runtime_options: Any) -> FastAPI:
    """The sla service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or SlaSettings()
    city, calendars = load_city(settings.config_dir), load_calendars(settings.config_dir)
    for i, dept in enumerate(city.departments):
        if dept.calendar not in calendars:
            raise config_error(
                settings.config_dir / "city.yaml",
                f"departments[{i}] ({dept.code})",
                "calendar",
                f"unknown calendar {dept.calendar!r}; see calendars.yaml",
            )
    book = SlaBook(city, load_sla_config(settings.config_dir), calendars, publish_v1=settings.publish_v1)
    runtime = SlaRuntime(settings=settings, book=book, **runtime_options)
    handlers.register(runtime)
    return create_service_app(
        runtime,
        title="Appeals SLA",
        description="SLA clocks on business calendars; warnings, breaches and escalation that fire once.",
        routers=[views.router],
        on_startup=_startup,
    )
