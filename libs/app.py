"""The one way a service is assembled: FastAPI for HTTP, FastStream for Kafka, PyMongo for state.

Nothing is created at import time: a service's `create_app(settings)` builds a
`Runtime`, registers its consumers, and the lifespan connects MongoDB, prepares
indexes, starts the broker and the scheduled tasks, and tears them down in reverse.
"""

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from faststream.kafka import KafkaBroker
from prometheus_client import CollectorRegistry
from pymongo.errors import PyMongoError

from libs import openapi, outbox, telemetry
from libs.auth import KeyStore
from libs.clock import Clock, SystemClock
from libs.config import ConfigError, load_city
from libs.http import (
    AccessLog,
    BodySizeLimit,
    Tracing,
    install_operational_routes,
    install_problem_handlers,
    problem,
)
from libs.kafka.broker import consumer_lag_gauge, declare_publishers, make_broker, record_consumer_lag
from libs.logging import configure_logging
from libs.mongo import Client, Database, make_client, service_database
from libs.settings import ServiceSettings

log = logging.getLogger(__name__)


SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


@dataclass
class Runtime(Generic[SettingsT]):
    """Everything a service's handlers, views and jobs share; one per process.

    Each service extends it with what it adds (`services/<name>/runtime.py`) and hands it
    to views as an `Annotated` dependency.
    """

    settings: SettingsT
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Clock = field(default_factory=SystemClock)
    broker: KafkaBroker = field(init=False)
    keys: KeyStore = field(init=False)
    mongo: Client | None = None
    _db: Database | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # What the service opened at start and closes when it stops, after its tasks (an HTTP client's close).
    closing: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.broker = make_broker(self.settings, self.registry)
        outbox.measure_outboxes(self.broker, self.registry)
        self.keys = KeyStore.from_file(self.settings.api_keys_file)
        # What the service publishes, declared from the contract so that its AsyncAPI document shows it.
        departments = [(d.code, d.name) for d in load_city(self.settings.config_dir).departments]
        declare_publishers(self.broker, self.settings.service_name, departments)

    @property
    def db(self) -> Database:
        if self._db is None:
            raise RuntimeError("the database is used before the service started")
        return self._db

    def every(
        self, seconds: float, job: Callable[[], Coroutine[Any, Any, Any]], name: str, run_first: bool = False
    ) -> None:
        """Run `job` every `seconds` while the service runs; a failing run is logged and retried next time."""

        async def loop() -> None:
            if not run_first:
                await asyncio.sleep(seconds)
            while True:
                await _attempt(job, name)
                await asyncio.sleep(seconds)

        self.spawn(loop(), name)

    def once(self, job: Callable[[], Coroutine[Any, Any, Any]], name: str, delay: float = 1.0) -> None:
        """Run `job` once the service has started (after `delay`), again after each failure until it succeeds."""

        async def run() -> None:
            # The delay also lets the broker start: jobs are scheduled before it does.
            await asyncio.sleep(delay)
            while not await _attempt(job, name):
                await asyncio.sleep(delay)

        self.spawn(run(), name)

    def spawn(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run `work` in the background, cancelled with the service's other tasks when it stops."""
        task = asyncio.create_task(work, name=name)
        self.tasks.append(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        if task in self.tasks:
            self.tasks.remove(task)


async def _attempt(job: Callable[[], Coroutine[Any, Any, Any]], name: str) -> bool:
    """Run a scheduled job; a failure is logged, not raised, so its schedule goes on."""
    try:
        await job()
        return True
    except Exception:
        log.exception("scheduled job failed", extra={"job": name})
        return False


async def get_runtime(request: Request) -> Runtime[Any]:
    """FastAPI dependency: the service's runtime (async, so FastAPI does not hand it to a thread)."""
    runtime: Runtime[Any] = request.app.state.runtime
    return runtime


def create_service_app(
    runtime: Runtime[Any],
    *,
    title: str,
    description: str,
    routers: list[APIRouter],
    on_startup: Callable[[Any], Awaitable[None]] | None = None,
    body_limits: dict[str, int] | None = None,
) -> FastAPI:
    """A FastAPI app that owns the runtime's connections for its lifetime.

    Bodies are refused over 1 MB, except on the paths of `body_limits`, each with its own limit.
    """
    settings = runtime.settings
    lag = consumer_lag_gauge(runtime.registry)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.mongo = make_client(settings, runtime.registry)
        runtime._db = service_database(runtime.mongo, settings)
        try:
            if on_startup is not None:
                await on_startup(runtime)
            await runtime.broker.start()
            runtime.every(5, lambda: record_consumer_lag(runtime.broker, lag), "consumer-lag", run_first=True)
            # What is built by now (modules, models, the app, clients) lives as long as the process. Frozen,
            # it is out of the collector's sight: a full collection then scans what batches and requests
            # leave behind, not some 100,000 objects more (35 ms each time).
            gc.freeze()
            log.info("service started", extra={"port": settings.http_port})
            yield
        finally:
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            runtime.tasks.clear()
            await outbox.drain()  # before the client closes: what is published must not be published again
            for close in runtime.closing:
                await close()
            runtime.closing.clear()
            await runtime.broker.stop()
            await runtime.mongo.close()

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        telemetry=telemetry.TELEMETRY,
    )
    app.state.runtime = runtime
    app.state.keys = runtime.keys
    app.state.readiness_checks = {
        "kafka": _broker_ping(runtime),
        "mongodb": lambda: runtime.db.command("ping"),
    }
    install_problem_handlers(app)

    @app.exception_handler(PyMongoError)
    async def _database_down(_: Request, exc: PyMongoError) -> JSONResponse:
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return problem(
            503,
            "the database is unavailable; try again shortly",
            kind="database-unavailable",
            headers={"Retry-After": "5"},
        )

    app.add_middleware(BodySizeLimit, larger=body_limits)
    app.add_middleware(AccessLog)
    # Routes and HTTP metrics inside the trace: the latency's exemplars name the request's trace.
    install_operational_routes(app, runtime.registry, settings.service_name)
    app.add_middleware(Tracing)
    for router in routers:
        app.include_router(router)
    openapi.install(app)
    return app


def operation_id(route: APIRoute) -> str:
    """An operation's id in the OpenAPI document: its handler's name (`submit_appeal`), which client generators
    turn into a method name, rather than FastAPI's default made of the name, the path and the method."""
    return route.name


def _broker_ping(runtime: Runtime[Any]) -> Callable[[], Awaitable[None]]:
    async def ping() -> None:
        if not await runtime.broker.ping(timeout=2.0):
            raise ConnectionError("broker did not answer")

    return ping


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run `app` with uvicorn on the configured address.

    The client address and scheme are the connection's, unless its peer is one of the proxies of
    `forwarded_allow_ips`: uvicorn otherwise believes X-Forwarded-For from 127.0.0.1, so any local
    caller (and any caller of a proxy that passes the header on) could pick its address.
    """
    import uvicorn

    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def run_service(settings_class: type[SettingsT], create_app: Callable[[SettingsT], FastAPI]) -> None:
    """Entry point of every service: settings from the environment, JSON logs, then serve."""
    settings = settings_class()
    configure_logging(settings.service_name, settings.log_level)
    try:
        telemetry.setup(settings.service_name)
    except ValueError as exc:
        raise SystemExit(f"{settings.service_name}: {exc}") from None
    try:
        app = create_app(settings)
    except ConfigError as exc:
        raise SystemExit(f"{settings.service_name}: {exc}") from None
    serve(app, settings)
