"""Local receivers for what notify sends: an SMTP server and HTTP endpoints for SMS, WeChat and webhooks.

In the embedded stack nothing leaves the machine: e-mail lands in a real SMTP
server (aiosmtpd) and SMS, WeChat and webhook calls in a small HTTP server. Both
keep what they received, in memory and as JSON lines under `--dir`, and
`GET /` on the HTTP port shows it to a person. Webhook signatures are checked
against the secrets given with `--secret name=value` (or `add_secret`).
"""

import argparse
import contextlib
import html
import json
import threading
import time
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from services.notify.channels import DELIVERY_HEADER, SIGNATURE_HEADER, sign

# The outbox page shows what strangers wrote (a company's title in a subject, anything posted to a receiver): every
# value is escaped, and the page may run no script and load nothing, should an escape ever be missed.
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def _field(value: Any, *path: str) -> Any:
    """`value[path[0]][path[1]]...`, or None where the posted body has another shape."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def shown(record: dict[str, Any]) -> dict[str, str]:
    """What the outbox page shows of one received message, as plain text: channel, recipient, subject, text."""
    kind, body = record.get("kind"), record.get("body")
    if kind == "email":
        to, subject, text = record.get("to"), record.get("subject"), body
    elif kind == "sms":
        to, subject, text = _field(body, "to"), None, _field(body, "text")
    elif kind == "wechat":
        to, subject = _field(body, "touser"), _field(body, "data", "first", "value")
        text = _field(body, "data", "remark", "value")
    else:  # a webhook: the event it carried
        to, subject, text = record.get("name"), _field(body, "event", "type"), body
    return {
        "kind": _text(kind),
        "to": _text(to),
        "subject": _text(subject),
        "text": _text(text),
        "delivery": _text(record.get("delivery")),
    }


COLUMNS = {"kind": "channel", "to": "to", "subject": "subject", "text": "message", "delivery": "delivery id"}


def _row(cells: dict[str, str]) -> str:
    return "<tr>" + "".join(f"<td>{html.escape(cells[column], quote=True)}</td>" for column in COLUMNS) + "</tr>"


def outbox_page(records: list[dict[str, Any]], total: int) -> str:
    """The page listing `records`, newest first; every value is escaped (html.escape, quotes too)."""
    rows = "".join(_row(shown(record)) for record in reversed(records))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS.values())
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Local outbox</title>"
        "<style>td{vertical-align:top;white-space:pre-wrap;max-width:40em}</style></head><body>"
        f"<h1>What notify sent ({total})</h1><table border=1 cellpadding=4><tr>{header}</tr>{rows}</table>"
        "</body></html>"
    )


class Sinks:
    """Both receivers, run in background threads; what arrived is in `received`."""

    def __init__(self, smtp_port: int, http_port: int, directory: Path | None = None) -> None:
        self.smtp_port, self.http_port, self.directory = smtp_port, http_port, directory
        self.received: list[dict[str, Any]] = []
        self.secrets: dict[str, str] = {}
        self.failures: dict[str, int] = {}
        self._lock = threading.Lock()
        self._smtp: Controller | None = None
        self._http: uvicorn.Server | None = None

    def add_secret(self, name: str, secret: str) -> None:
        """Check webhook calls to /webhook/<name> against this secret."""
        self.secrets[name] = secret

    def fail_next(self, path: str, times: int) -> None:
        """Answer the next `times` calls to `path` (e.g. '/webhook/head') with 503."""
        self.failures[path] = times

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.received if r["kind"] == kind]

    def _keep(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.received.append(record)
            if self.directory:
                self.directory.mkdir(parents=True, exist_ok=True)
                with open(self.directory / f"{record['kind']}.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def start(self) -> None:
        """Serve both receivers; what an earlier run kept under `directory` is shown again."""
        sinks = self
        if self.directory and self.directory.exists():
            for path in sorted(self.directory.glob("*.jsonl")):
                for line in path.read_text(encoding="utf-8").splitlines():
                    # A line that does not parse is the last one of a receiver killed while writing it.
                    with contextlib.suppress(ValueError):
                        self.received.append(json.loads(line))
            self.received.sort(key=lambda record: record.get("at", 0))

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                mail = message_from_bytes(envelope.content, policy=default_policy)
                sinks._keep(
                    {
                        "kind": "email",
                        "to": list(envelope.rcpt_tos),
                        "subject": str(mail["Subject"]),
                        "delivery": str(mail[DELIVERY_HEADER]),
                        "message_id": str(mail["Message-ID"]),
                        "body": mail.get_content(),
                        "at": time.time(),
                    }
                )
                return "250 Message accepted for delivery"

        self._smtp = Controller(Handler(), hostname="127.0.0.1", port=self.smtp_port)
        self._smtp.start()
        self._http = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.http_port, log_level="warning", access_log=False)
        )
        threading.Thread(target=self._http.run, daemon=True).start()
        deadline = time.monotonic() + 10
        while not self._http.started and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self._smtp:
            self._smtp.stop()
        if self._http:
            self._http.should_exit = True

    def _app(self) -> FastAPI:
        app = FastAPI(title="Local notification receivers")
        sinks = self

        async def take(request: Request, kind: str, name: str | None = None) -> JSONResponse:
            path = request.url.path
            if sinks.failures.get(path, 0) > 0:
                sinks.failures[path] -= 1
                return JSONResponse({"error": "temporarily unavailable"}, status_code=503)
            body = await request.body()
            verified = None
            if kind == "webhook" and name in sinks.secrets:
                verified = request.headers.get(SIGNATURE_HEADER) == sign(sinks.secrets[name], body)
                if not verified:
                    return JSONResponse({"error": "bad signature"}, status_code=401)
            sinks._keep(
                {
                    "kind": kind,
                    "name": name,
                    "delivery": request.headers.get(DELIVERY_HEADER),
                    "verified": verified,
                    "body": json.loads(body or b"null"),
                    "at": time.time(),
                }
            )
            return JSONResponse({"ok": True})

        @app.post("/sms")
        async def sms(request: Request):
            return await take(request, "sms")

        @app.post("/wechat")
        async def wechat(request: Request):
            return await take(request, "wechat")

        @app.post("/webhook/{name}")
        async def webhook(name: str, request: Request):
            return await take(request, "webhook", name)

        @app.get("/", response_class=HTMLResponse)
        async def index():
            with sinks._lock:
                latest, total = sinks.received[-200:], len(sinks.received)
            return HTMLResponse(outbox_page(latest, total), headers=PAGE_HEADERS)

        @app.get("/received")
        async def received():
            return sinks.received

        return app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.sinks", description=__doc__.splitlines()[0])
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--http-port", type=int, default=8006)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--secret", action="append", default=[], help="name=secret for /webhook/<name>")
    args = parser.parse_args()
    sinks = Sinks(args.smtp_port, args.http_port, args.dir)
    for pair in args.secret:
        name, _, secret = pair.partition("=")
        sinks.add_secret(name, secret)
    sinks.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sinks.stop()


if __name__ == "__main__":
    main()
