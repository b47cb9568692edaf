"""Notify assembled: directory and templates, the event consumer, the dispatcher, HTTP."""

from pathlib import Path
from typing import Any

from fastapi import FastAPI

from libs.app import create_service_app
from libs.calendars import load_calendars
from libs.config import City, config_error, load_city, load_registry_config, load_sla_config, load_supervision
from services.notify import adopt, channels, handlers, notices, rules, scheduled, views
from services.notify.book import NotifyBook
from services.notify.rules import Renderer
from services.notify.runtime import NotifyRuntime
from services.notify.settings import NotifySettings


async def _startup(runtime: NotifyRuntime) -> None:
    settings = runtime.settings
    runtime.senders = channels.open_senders(
        settings.smtp_host,
        settings.smtp_port,
        settings.smtp_connections,
        settings.send_timeout_seconds,
        webhook_networks=lambda: settings.webhook_allowed_networks,
    )
    runtime.closing.append(runtime.senders.close)
    await notices.ensure_indexes(runtime.db)
    # Before the first event is read: a fresh database tells the planner at once that no old record is left.
    await adopt.adopt_records(runtime.db, runtime.memory, runtime.clock.now())
    scheduled.start(runtime)


def _city(config_dir: Path) -> City:
    """city.yaml, with no department coded as the city's own recipients are (`city:supervisor` would name both)."""
    city = load_city(config_dir)
    for i, dept in enumerate(city.departments):
        if dept.code == rules.CITY:
            raise config_error(
                config_dir / "city.yaml",
                f"departments[{i}] ({dept.code})",
                "code",
                f"{rules.CITY!r} names the city's own recipients in notify ({rules.CITY_SUPERVISOR}); choose another",
            )
    return city


def create_app(settings: NotifySettings | None = None, **runtime_options: Any) -> FastAPI:
    """The notify service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or NotifySettings()
    city = _city(settings.config_dir)
    book = NotifyBook(
        city,
        load_sla_config(settings.config_dir),
        load_calendars(settings.config_dir),
        Renderer(),
        load_registry_config(settings.config_dir, city),
        # The urging ladder's audiences: who hears which level (a broken file stops the start, naming what is wrong).
        load_supervision(settings.config_dir, city),
    )
    runtime = NotifyRuntime(settings=settings, book=book, **runtime_options)
    handlers.register(runtime)
    return create_service_app(
        runtime,
        title="Appeals notify",
        description="Tells companies, handlers, heads and supervisors what they must hear, once, on their channel.",
        routers=[views.router],
        on_startup=_startup,
    )
