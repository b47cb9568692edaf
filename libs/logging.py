"""Structured JSON logs on stdout that never carry personal data; readable lines for a person at a terminal
(`LOG_FORMAT=console`, which `make run` sets when it writes to one)."""

import logging
import os
import re
import sys
import time

from pythonjsonlogger.json import JsonFormatter

from libs import tracing

# Defence in depth: code never logs contacts, but a stray value in an exception
# message must not leak either, so anything shaped like a mobile number or a
# unified social credit code is masked before a line is written.
_PHONE = re.compile(r"(?<!\d)(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?!\d)")
_USCC = re.compile(r"(?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Z])")


def redact(text: str) -> str:
    """Mask phone numbers and credit codes in `text`."""
    return _USCC.sub("[uscc]", _PHONE.sub("[phone]", text))


class _TraceFilter(logging.Filter):
    """Name the trace a line belongs to, so one appeal's lines can be found across the services."""

    def filter(self, record: logging.LogRecord) -> bool:
        traceparent = tracing.active()
        if traceparent is not None and tracing.valid(traceparent):
            record.trace_id = tracing.trace_id(traceparent)
            record.span_id = tracing.span_id(traceparent)
        return True


class _RedactingFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


# What every LogRecord has; anything else on a record came in `extra` and is shown after the message.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class _ConsoleFormatter(logging.Formatter):
    """`10:42:07 WARNING router.views  a contact was read  appeal_id=01J... by=coord`: one line a person reads."""

    def format(self, record: logging.LogRecord) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(record.created))
        extras = "  ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        line = f"{at} {record.levelname:<7} {record.name.removeprefix('services.')}  {record.getMessage()}"
        if extras:
            line += "  " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stdout: one JSON object tagged with the service name, or with `LOG_FORMAT=console`
    one readable line."""
    handler = logging.StreamHandler(sys.stdout)
    if os.environ.get("LOG_FORMAT", "json").lower() == "console":
        handler.setFormatter(_ConsoleFormatter())
    else:
        handler.setFormatter(
            _RedactingFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    handler.addFilter(_TraceFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FastStream's per-message lines are plain text without the trace; libs.kafka writes one JSON line instead.
    for noisy in ("aiokafka", "pymongo", "uvicorn.access", "faststream"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
