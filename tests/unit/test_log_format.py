"""A person at a terminal reads one line per record (`LOG_FORMAT=console`); files and containers get JSON. Neither
ever shows a phone number or a credit code."""

import json
import logging

import pytest

from libs.logging import configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_console_lines_are_readable_with_their_extras_and_no_personal_data(monkeypatch, capsys, restore_logging):
    monkeypatch.setenv("LOG_FORMAT", "console")
    configure_logging("router")
    logging.getLogger("services.router.views").warning(
        "a contact was read", extra={"appeal_id": "01JB8X", "by": "coord", "note": "call 13800138000"}
    )
    line = capsys.readouterr().out.strip()
    assert (
        line.split(" ", 1)[1]
        == "WARNING router.views  a contact was read  appeal_id=01JB8X  by=coord  note=call [phone]"
    )


def test_json_stays_the_default(monkeypatch, capsys, restore_logging):
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    configure_logging("router")
    logging.getLogger("services.router.views").warning("a contact was read", extra={"appeal_id": "01JB8X"})
    record = json.loads(capsys.readouterr().out)
    assert (record["service"], record["level"], record["appeal_id"]) == ("router", "WARNING", "01JB8X")
