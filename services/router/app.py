"""Router assembled: routing book, consumers, scheduled jobs, HTTP."""

from typing import Any

from fastapi import FastAPI

from libs import openapi
from libs.app import create_service_app
from services.router import handlers, registry_views, scheduled, service, views, visits_views
from services.router.rules import load_routing_book
from services.router.runtime import RouterRuntime
from services.router.settings import RouterSettings


async def _startup(runtime: RouterRuntime) -> None:
    await service.ensure_indexes(runtime.db)
    scheduled.start(runtime)


def create_app(settings: RouterSettings | None = None, **runtime_options: Any) -> FastAPI:
    """The router service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or RouterSettings()
    runtime = RouterRuntime(settings=settings, book=load_routing_book(settings.config_dir), **runtime_options)
    handlers.register(runtime)
    app = create_service_app(
        runtime,
        title="Appeals router",
        description="Routing, the appeal lifecycle, department actions, return visits, the enterprise registry.",
        routers=[views.router, visits_views.router, registry_views.router],
        on_startup=_startup,
        body_limits={"/v1/enterprises/import": registry_views.MAX_LIST_BYTES},
    )
    city, registry = runtime.book.city, runtime.book.registry
    departments = [d.code for d in city.departments]
    districts = [d.code for d in city.districts]
    lists = [entry.id for entry in registry.lists]
    openapi.edit(
        app,
        openapi.parameter_of("/v1/appeals", "get", "department", departments),
        openapi.parameter_of("/v1/appeals", "get", "district", districts),
        openapi.field_of("ActionIn", "target_department", departments),
        openapi.field_of("PreviewIn", "department", [c for c in departments if not city.cannot_choose(c)]),
        openapi.items_of("PreviewIn", "lists", lists),
        openapi.field_of("EnterpriseIn", "district", districts),
        openapi.field_of("EnterpriseIn", "liaison", [liaison.id for liaison in registry.liaisons]),
        openapi.field_of("MembershipIn", "list", lists),
        openapi.parameter_of("/v1/enterprises/import", "post", "list", lists),
    )
    return app
