"""Router assembled: routing book, consumers, scheduled jobs, HTTP."""

from dataclasses import dataclass

from fastapi import FastAPI

from libs.app import Runtime, create_service_app
from services.router import handlers, scheduled, service, views
from services.router.rules import RoutingBook, load_routing_book
from services.router.settings import RouterSettings


@dataclass
class RouterRuntime(Runtime):
    book: RoutingBook | None = None


async def _startup(runtime: Runtime) -> None:
    await service.ensure_indexes(runtime.db)
    scheduled.start(runtime)


def create_app(settings: RouterSettings | None = None, **runtime_options) -> FastAPI:
    """The router service; configuration errors stop it here, naming file, entry and field."""
    settings = settings or RouterSettings()
    runtime = RouterRuntime(settings=settings, book=load_routing_book(settings.config_dir), **runtime_options)
    handlers.register(runtime)
    return create_service_app(
        runtime, title="Appeals router",
        description="Routing rules, the appeal lifecycle and department actions.",
        routers=[views.router], on_startup=_startup)
