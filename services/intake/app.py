"""Intake assembled: settings, config, consumers, HTTP."""

from typing import Any

from fastapi import FastAPI

from libs import openapi
from libs.app import create_service_app
from libs.config import load_catalogue, load_city, load_registry_config
from libs.mongo import GroupedInserts
from services.intake import contacts, handlers, open311, open311_translation, scheduled, service, views
from services.intake.runtime import IntakeRuntime
from services.intake.settings import IntakeSettings


async def _startup(runtime: IntakeRuntime) -> None:
    await service.ensure_indexes(runtime.db)
    runtime.inserts = GroupedInserts(runtime.db.appeals)
    scheduled.start(runtime)


def create_app(settings: IntakeSettings | None = None, **runtime_options: Any) -> FastAPI:
    """The intake service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or IntakeSettings()
    city = load_city(settings.config_dir)
    runtime = IntakeRuntime(
        settings=settings,
        city=city,
        catalogue=load_catalogue(settings.config_dir),
        registry_config=load_registry_config(settings.config_dir, city),
        **runtime_options,
    )
    handlers.register(runtime)
    app = create_service_app(
        runtime,
        title="Appeals intake",
        description="Channel adapters submit appeals; companies follow them and answer departments. "
        "Existing 311 software can use the Open311 GeoReport v2 facade under /open311/v2.",
        routers=[views.router, contacts.router, open311.router],
        on_startup=_startup,
    )
    app.add_exception_handler(open311_translation.Open311Error, open311.on_open311_error)
    registry = runtime.registry_config
    openapi.edit(
        app,
        openapi.field_of("EnterpriseIn", "district", [d.code for d in city.districts]),
        openapi.field_of(
            "AppealIn", "department", [d.code for d in city.departments if not city.cannot_choose(d.code)]
        ),
        openapi.field_of("AppealIn", "taken_by", [liaison.id for liaison in registry.liaisons]),
    )
    return app
