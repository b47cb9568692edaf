"""Intake assembled: settings, config, consumers, HTTP."""

from dataclasses import dataclass

from fastapi import FastAPI

from libs.app import Runtime, create_service_app
from libs.config import City, load_city
from services.intake import handlers, service, views
from services.intake.settings import IntakeSettings


@dataclass
class IntakeRuntime(Runtime):
    city: City | None = None


async def _startup(runtime: Runtime) -> None:
    await service.ensure_indexes(runtime.db)


def create_app(settings: IntakeSettings | None = None, **runtime_options) -> FastAPI:
    """The intake service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or IntakeSettings()
    runtime = IntakeRuntime(settings=settings, city=load_city(settings.config_dir), **runtime_options)
    handlers.register(runtime)
    return create_service_app(
        runtime, title="Appeals intake",
        description="Channel adapters submit appeals; companies follow them.",
        routers=[views.router], on_startup=_startup)
