"""Access lines: every request answered 4xx or 5xx, and a sample of the others, with the request's trace id and never
its query (where a status token may travel)."""

import json
import logging

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from libs import tracing
from libs.http import AccessLog, Tracing
from libs.logging import configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def app_with(sample: float) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/appeals/{appeal_id}")
    async def appeal(appeal_id: str) -> dict[str, str]:
        if appeal_id == "missing":
            raise HTTPException(404, "no appeal")
        return {"appeal_id": appeal_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(AccessLog, sample=sample)
    app.add_middleware(Tracing)
    return app


async def lines(app: FastAPI, capsys, *paths: str) -> tuple[list[dict], list[httpx.Response]]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
        answers = [await client.get(path) for path in paths]
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if '"logger": "access"' in line], answers


async def test_a_refused_request_has_its_line_with_its_trace_and_without_its_query(
    capsys, monkeypatch, restore_logging
):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    configure_logging("intake")
    logged, (answer,) = await lines(app_with(sample=0), capsys, "/v1/appeals/missing?token=secret-token")
    assert len(logged) == 1
    line = logged[0]
    assert (line["method"], line["path"], line["status"]) == ("GET", "/v1/appeals/missing", 404)
    assert line["trace_id"] == tracing.trace_id(answer.headers["traceparent"])
    assert "secret-token" not in json.dumps(line) and line["ms"] >= 0


async def test_others_are_sampled_and_probes_never(capsys, monkeypatch, restore_logging):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    configure_logging("intake")
    logged, _ = await lines(app_with(sample=0), capsys, "/v1/appeals/a", "/healthz")
    assert logged == []
    logged, _ = await lines(app_with(sample=1), capsys, "/v1/appeals/a", "/healthz")
    assert [(line["path"], line["status"]) for line in logged] == [("/v1/appeals/a", 200)]
