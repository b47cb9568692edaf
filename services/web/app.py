"""Web assembled: the portal and workbench pages over intake's, router's and stats' APIs."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs import telemetry
from libs.http import AccessLog, BodySizeLimit, Tracing, install_operational_routes
from services.web import office, office_visits, portal, portal_follow, portal_submit, workbench
from services.web.i18n import t
from services.web.pages import lang_of, problem_page
from services.web.runtime import WebRuntime
from services.web.settings import WebSettings
from services.web.upstream import Unavailable

log = logging.getLogger(__name__)

# Pages load nothing from elsewhere, are never framed, and send no referrer (a follow link carries its token).
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers if scope["type"] == "http" else send)


def create_app(settings: WebSettings | None = None) -> FastAPI:
    """The web service; configuration errors stop it here."""
    runtime = WebRuntime(settings=settings or WebSettings())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await runtime.upstream.close()

    app = FastAPI(
        title="Appeals web",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        telemetry=telemetry.TELEMETRY,
    )
    app.state.runtime = runtime

    @app.exception_handler(Unavailable)
    async def _upstream_down(request: Request, _: Unavailable) -> HTMLResponse:
        lang = lang_of(request)
        page = problem_page(request, runtime, 503, t(lang, "unavailable"), t(lang, "try_again"))
        page.headers["Retry-After"] = "60"
        return page

    @app.exception_handler(Exception)
    async def _failed(request: Request, exc: Exception) -> HTMLResponse:
        log.error("a page failed", exc_info=exc)
        lang = lang_of(request)
        return problem_page(request, runtime, 500, t(lang, "unavailable"), t(lang, "try_again"))

    app.add_middleware(BodySizeLimit)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(AccessLog)
    # Routes and HTTP metrics inside the trace: the latency's exemplars name the request's trace.
    install_operational_routes(app, runtime.registry, runtime.settings.service_name)
    app.add_middleware(Tracing)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.include_router(portal.router)
    # The submission's fixed paths (/appeals/new, /appeals/lost) before an appeal's own (/appeals/{appeal_id}).
    app.include_router(portal_submit.router)
    app.include_router(portal_follow.router)
    app.include_router(workbench.router)
    app.include_router(office.router)
    app.include_router(office_visits.router)
    return app
