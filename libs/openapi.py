"""What every service's OpenAPI document says beyond what FastAPI derives from the routes: the answers the shared
plumbing gives to any operation of a kind (libs/http.py), so that the documents tell the truth about them.

- An operation that takes a body answers 400 when the body cannot be read at all (not UTF-8: FastAPI's "There was
  an error parsing the body", before any field is looked at) and 413 over the size limit (`BodySizeLimit`).

And what a service's configuration decides (`edit`): the districts, departments, liaisons and lists a field or a
parameter takes, which the service checks against config/ and a static model cannot list.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from libs.http import PROBLEM_JSON, PROBLEM_SCHEMA

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")

_BODY_ANSWERS = {
    "400": "The body could not be read: not UTF-8 text",
    "413": "The body is over the size limit",
}


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """The document with the answers of the shared plumbing declared where they are missing (in place)."""
    for item in document.get("paths", {}).values():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            # FastAPI declares its own validation error body; every service answers a problem (libs/http.py).
            invalid = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if invalid.get("$ref", "").endswith("/HTTPValidationError"):
                responses["422"] = {
                    "description": "Invalid fields; `errors` names each",
                    "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
                }
            if "requestBody" not in operation:
                continue
            for status, text in _BODY_ANSWERS.items():
                responses.setdefault(
                    status, {"description": text, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}}
                )
    return document


Edit = Callable[[dict[str, Any]], None]


def install(app: FastAPI) -> None:
    """Serve (and cache) the completed document as the app's own, with the service's edits (`edit`) made."""
    generate: Callable[[], dict[str, Any]] = app.openapi
    app.state.openapi_edits = []

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = complete(generate())
            for change in app.state.openapi_edits:
                change(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def edit(app: FastAPI, *changes: Edit) -> None:
    """Make `changes` to the app's document when it is generated."""
    app.state.openapi_edits.extend(changes)


def _strings(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The string schemas of a property or parameter: itself, or its string members (`str | None`)."""
    if node.get("type") == "string":
        return [node]
    return [m for m in node.get("anyOf", []) if m.get("type") == "string"]


def _set_enum(node: dict[str, Any], values: list[str], where: str) -> None:
    found = _strings(node)
    if not found:
        raise KeyError(f"{where} is not a string")
    for member in found:
        member["enum"] = list(values)


def field_of(schema: str, field: str, values: list[str]) -> Edit:
    """Say that the property `field` of the component `schema` takes only `values`."""

    def change(document: dict[str, Any]) -> None:
        _set_enum(document["components"]["schemas"][schema]["properties"][field], values, f"{schema}.{field}")

    return change


def items_of(schema: str, field: str, values: list[str]) -> Edit:
    """Say that the items of the array property `field` of the component `schema` are among `values`."""

    def change(document: dict[str, Any]) -> None:
        node = document["components"]["schemas"][schema]["properties"][field]
        arrays = (
            [node] if node.get("type") == "array" else [m for m in node.get("anyOf", []) if m.get("type") == "array"]
        )
        if not arrays:
            raise KeyError(f"{schema}.{field} is not an array")
        for array in arrays:
            _set_enum(array["items"], values, f"{schema}.{field}[]")

    return change


def parameter_of(path: str, method: str, name: str, values: list[str]) -> Edit:
    """Say that the parameter `name` of an operation takes only `values`."""

    def change(document: dict[str, Any]) -> None:
        for parameter in document["paths"][path][method].get("parameters", []):
            if parameter["name"] == name:
                _set_enum(parameter["schema"], values, f"{method.upper()} {path} {name}")
                return
        raise KeyError(f"{method.upper()} {path} has no parameter {name}")

    return change
