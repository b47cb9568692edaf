"""What both audiences' pages share beyond rendering: an appeal's id, a redirect, and how an API's refusal reads."""

import re
from typing import Any

from fastapi.responses import RedirectResponse

APPEAL_ID = re.compile(r"^[0-9A-Z]{26}$")


def see_other(url: str) -> RedirectResponse:
    """After a form: go to the page that shows its outcome."""
    return RedirectResponse(url, status_code=303)


def errors_of(response_json: Any, fields: tuple[str, ...] = ()) -> tuple[dict[str, str], list[str]]:
    """An API's 422 problem as messages by form field (of `fields`), and those that belong to no field."""
    by_field: dict[str, str] = {}
    other: list[str] = []
    for error in (response_json or {}).get("errors", []) if isinstance(response_json, dict) else []:
        name = str(error.get("field", ""))
        field = next((f for f in fields if name == f or name.startswith(f + ".")), None)
        if field:
            by_field.setdefault(field, str(error.get("message", "invalid")).removeprefix("Value error, "))
        else:
            other.append(f"{name}: {error.get('message', 'invalid')}")
    return by_field, other


def detail(response_json: Any) -> str:
    """A problem's `detail`, or nothing."""
    return str(response_json.get("detail", "")) if isinstance(response_json, dict) else ""


def refusal(response_json: Any) -> str:
    """A refused action in the API's own words: its detail, then each failing field's message."""
    _, other = errors_of(response_json)
    return "; ".join([detail(response_json), *other]) if other else detail(response_json)
