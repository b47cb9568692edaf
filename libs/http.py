"""HTTP plumbing shared by every service: problem details, body limit, health, metrics."""

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator import metrics as http_metrics
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from libs import tracing

log = logging.getLogger(__name__)
access = logging.getLogger("access")

PROBLEM_JSON = "application/problem+json"
MAX_BODY_BYTES = 1024 * 1024

ReadinessCheck = Callable[[], Awaitable[None]]

# Every problem names its kind in `type`, a URI that stays the same from release to release (docs/api/problems.md),
# so a client tells "the platform is behind" from "the database is down" without reading the prose of `detail`.
PROBLEM_TYPE = "urn:appeals:problem:"


@dataclass(frozen=True)
class ProblemKind:
    status: int
    title: str
    about: str


PROBLEM_KINDS: dict[str, ProblemKind] = {
    "bad-request": ProblemKind(400, "Bad Request", "The request could not be read."),
    "unauthenticated": ProblemKind(401, "Unauthorized", "No valid key (X-Api-Key) or status token was given."),
    "forbidden": ProblemKind(403, "Forbidden", "The key is valid but its scope does not reach this."),
    "not-found": ProblemKind(404, "Not Found", "No such resource (appeal, department, company, ...)."),
    "method-not-allowed": ProblemKind(405, "Method Not Allowed", "The path does not take this method."),
    "conflict": ProblemKind(
        409, "Conflict", "The state forbids it: a transition the lifecycle does not allow, a used channel_ref, ..."
    ),
    "too-large": ProblemKind(413, "Content Too Large", "The body is over the limit (1 MB; a list import more)."),
    "unsupported-media-type": ProblemKind(415, "Unsupported Media Type", "The body is not in a type taken here."),
    "invalid-fields": ProblemKind(422, "Unprocessable Content", "Fields are missing or wrong; `errors` names each."),
    "rate-limited": ProblemKind(429, "Too Many Requests", "Too many requests from this phone or address."),
    "internal": ProblemKind(500, "Internal Server Error", "A fault of the service; the request was not completed."),
    "unavailable": ProblemKind(503, "Service Unavailable", "The service cannot answer now; retry after Retry-After."),
    "database-unavailable": ProblemKind(503, "Service Unavailable", "The service's database does not answer."),
    "broker-unavailable": ProblemKind(
        503, "Service Unavailable", "Kafka did not acknowledge the write; nothing was accepted."
    ),
    "platform-behind": ProblemKind(
        503, "Service Unavailable", "The platform is far behind (shedding); nothing was stored, retry later."
    ),
    "not-ready": ProblemKind(
        503, "Service Unavailable", "A dependency of the service (Kafka, MongoDB) does not answer."
    ),
}
# The kind of a status no call site names otherwise.
_BY_STATUS = {kind.status: name for name, kind in reversed(PROBLEM_KINDS.items())}

# The body of every problem response, as the OpenAPI documents declare it.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "The kind of problem: docs/api/problems.md."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What is wrong, in a sentence."},
        "errors": {
            "type": "array",
            "description": "For invalid fields: each field and what is wrong with it.",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


def problem(
    status: int, detail: str, *, kind: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem details response of `kind` (the status's own kind unless named)."""
    name = kind or _BY_STATUS.get(status, "internal" if status >= 500 else "bad-request")
    title = PROBLEM_KINDS[name].title if PROBLEM_KINDS[name].status == status else "Error"
    body = {"type": PROBLEM_TYPE + name, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring that these statuses answer with problem details."""
    return {
        code: {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
        for code, text in descriptions.items()
    }


def _field_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "header")]
        errors.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return errors


class AccessLog:
    """One line per request answered 4xx or 5xx, and a sample of the others (`sample`, 1 %): method, path (never the
    query, where a token may travel), status and milliseconds, with the trace id the logs add. Probes and scrapes are
    never sampled, only their failures logged. Inside `Tracing`, so the line carries the request's trace."""

    QUIET = ("/metrics", "/healthz", "/readyz")

    def __init__(self, app: ASGIApp, sample: float = 0.01) -> None:
        self.app = app
        self.sample = sample

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def noting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting)
        finally:
            path = scope.get("path", "")
            if status >= 400 or (path not in self.QUIET and random.random() < self.sample):
                access.log(
                    logging.WARNING if status >= 500 else logging.INFO,
                    "request",
                    extra={
                        "method": scope.get("method"),
                        "path": path,
                        "status": status,
                        "ms": round((time.perf_counter() - began) * 1000, 1),
                    },
                )


class Tracing:
    """Bind each request to the caller's W3C trace (or a new one) and echo it in the `traceparent` header.

    A plain ASGI middleware: Starlette's `@app.middleware("http")` runs the endpoint in
    another task with streams between them, which cost intake a fifth of its CPU per request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # With the SDK, FastAPI's server span (around this middleware) took the caller's context already.
        traceparent = tracing.active() if tracing.sdk_in_use() else None
        if traceparent is None:
            header = next((v.decode("latin-1") for k, v in scope.get("headers") or [] if k == b"traceparent"), None)
            traceparent = header if header is not None and tracing.valid(header) else tracing.new_traceparent()

        async def send_with_trace(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"traceparent"]
                message = {**message, "headers": [*headers, (b"traceparent", traceparent.encode())]}
            await send(message)

        bound = tracing.current.set(traceparent)
        try:
            await self.app(scope, receive, send_with_trace)
        finally:
            tracing.current.reset(bound)


def install_problem_handlers(app: FastAPI) -> None:
    """Render every error as problem details; validation errors name the failing fields."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _field_errors(exc)
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem(422, f"invalid fields: {fields}", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal error; the request was not completed")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes at the request's path (RFC 9110: a 405 lists them in `Allow`).

    Starlette's own 405 names the methods of the first route whose path matched, not of all of them: a path served
    by a GET and a POST route (Open311's requests, a subscription) answered `Allow: POST`.
    """
    scope = request.scope
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] == Match.FULL for route in request.app.router.routes)
    ]


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class BodySizeLimit:
    """Refuse request bodies over `limit` bytes with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES, larger: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        # Paths that take bigger bodies (a government list of thousands of companies), by exact path.
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.larger.get(scope.get("path", ""), self.limit)
        response = problem(413, f"request body is larger than {limit} bytes")
        await response(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised from inside `receive`; an HTTPException so FastAPI's body parsing passes it on as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def request_latency(registry: CollectorRegistry) -> Callable[[http_metrics.Info], None]:
    """The instrumentator's `http_request_duration_seconds{handler,method,status}`, each observation with the
    request's trace id as its exemplar (the library's own histogram takes none)."""
    histogram = Histogram(
        "http_request_duration_seconds",
        "Duration of HTTP requests in seconds",
        ["handler", "method", "status"],
        registry=registry,
    )

    def observe(info: http_metrics.Info) -> None:
        trace = tracing.trace_id(tracing.current.get())
        histogram.labels(info.modified_handler, info.method, info.modified_status).observe(
            info.modified_duration, {"trace_id": trace} if trace else None
        )

    return observe


def install_operational_routes(app: FastAPI, registry: CollectorRegistry, service: str) -> None:
    """`/healthz` (process alive), `/readyz` (dependencies reachable), `/metrics`, HTTP metrics.

    Add the tracing middleware after this (outside the metrics'), so that latencies carry the trace ids.
    """
    # Requests and their latency only: the library's default also keeps request and response sizes and a
    # second, finer latency histogram, five observations a request that no dashboard reads.
    # The process's CPU, resident memory and open files, and the interpreter's version: what the operators' panels
    # and alerts read beside the service's own figures (a private registry has none of the default one's).
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    instrumentator = Instrumentator(registry=registry, excluded_handlers=["/metrics", "/healthz", "/readyz"])
    instrumentator.add(http_metrics.requests(registry=registry), request_latency(registry))
    instrumentator.instrument(app)

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["operations"], summary="Broker and database are reachable")
    async def readyz(request: Request) -> Response:
        checks: dict[str, ReadinessCheck] = getattr(request.app.state, "readiness_checks", {})
        failed = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=3)
            except Exception as exc:  # readiness reports any failure, whatever its kind
                failed[name] = type(exc).__name__
        if failed:
            return problem(503, "not ready: " + ", ".join(sorted(failed)), kind="not-ready", checks=failed)
        return JSONResponse({"status": "ready", "service": service, "checks": sorted(checks)})

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        # OpenMetrics (with the latencies' exemplars) to a scraper that asks for it, Prometheus' text format otherwise.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(registry), media_type=content_type)


def require(condition: bool, status: int, detail: str) -> None:
    """Raise an HTTP error with `detail` unless `condition` holds."""
    if not condition:
        raise HTTPException(status, detail)
