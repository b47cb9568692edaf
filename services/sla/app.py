"""SLA assembled: calendars, profiles and the urging ladder, the lifecycle consumer, the scheduler, HTTP."""

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from libs.app import create_service_app
from libs.calendars import load_calendars, parse_target
from libs.config import config_error, load_assessment, load_city, load_sla_config, load_supervision
from services.sla import handlers, scheduled, service, views
from services.sla.runtime import SlaRuntime
from services.sla.service import SlaBook
from services.sla.settings import SlaSettings


async def _startup(runtime: SlaRuntime) -> None:
    await service.ensure_indexes(runtime.db)
    scheduled.start(runtime)


def load_book(config_dir: Path, publish_v1: bool = False) -> SlaBook:
    """What sla works by, from `config_dir`: city, calendars, SLA profiles, supervision (the urging ladder).

    Raises `ConfigError` naming file, entry and field when one of them is invalid.
    """
    city, calendars = load_city(config_dir), load_calendars(config_dir)
    for i, dept in enumerate(city.departments):
        if dept.calendar not in calendars:
            raise config_error(
                config_dir / "city.yaml",
                f"departments[{i}] ({dept.code})",
                "calendar",
                f"unknown calendar {dept.calendar!r}; see calendars.yaml",
            )
    sla, supervision = load_sla_config(config_dir), load_supervision(config_dir, city)
    for i, rung in enumerate(supervision.urging.levels):
        try:
            parse_target(rung.after_breach)
        except ValueError as exc:
            # The file's pattern lets `0wd` through; the scheduler would fail on it at every pass.
            raise config_error(
                config_dir / "supervision.yaml", f"urging.levels[{i}]", "after_breach", str(exc)
            ) from None
    redo = load_assessment(config_dir, city).redo.resolution
    return SlaBook(city, sla, calendars, supervision, publish_v1=publish_v1, redo_target=redo)


def create_app(settings: SlaSettings | None = None, **runtime_options: Any) -> FastAPI:
    """The sla service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or SlaSettings()
    book = load_book(settings.config_dir, settings.publish_v1)
    runtime = SlaRuntime(settings=settings, book=book, **runtime_options)
    handlers.register(runtime)
    return create_service_app(
        runtime,
        title="Appeals SLA",
        description="SLA clocks on business calendars; warnings, breaches and escalation that fire once.",
        routers=[views.router],
        on_startup=_startup,
    )
