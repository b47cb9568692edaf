"""Notify assembled: directory and templates, the event consumer, the dispatcher, HTTP."""

from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI

from libs.app import Runtime, create_service_app
from libs.calendars import load_calendars
from libs.config import load_city, load_sla_config
from services.notify import handlers, scheduled, service, views
from services.notify.metrics import NotifyMetrics
from services.notify.rules import Renderer
from services.notify.service import NotifyBook
from services.notify.settings import NotifySettings


@dataclass
class NotifyRuntime(Runtime):
    book: NotifyBook | None = None
    metrics: NotifyMetrics | None = None
    http: httpx.AsyncClient | None = None
    memory: service.Memory = field(default_factory=service.Memory)


async def _startup(runtime: Runtime) -> None:
    runtime.http = httpx.AsyncClient(timeout=runtime.settings.send_timeout_seconds)
    await service.ensure_indexes(runtime.db)
    scheduled.start(runtime)


def create_app(settings: NotifySettings | None = None, **runtime_options) -> FastAPI:
    """The notify service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or NotifySettings()
    book = NotifyBook(load_city(settings.config_dir), load_sla_config(settings.config_dir),
                      load_calendars(settings.config_dir), Renderer())
    runtime = NotifyRuntime(settings=settings, book=book, **runtime_options)
    runtime.metrics = NotifyMetrics.register(runtime.registry)
    handlers.register(runtime)
    return create_service_app(
        runtime, title="Appeals notify",
        description="Tells companies, handlers, heads and supervisors what they must hear, once, on their channel.",
        routers=[views.router], on_startup=_startup)
