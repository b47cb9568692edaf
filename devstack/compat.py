"""What a change of the API documents breaks for someone who built on the released ones (`docs/api/released/`).

Two directions, as each side of an API relies on different things:

- What a service RECEIVES (request parameters and bodies, consumed events): whoever sends it relies on every value
  it sent being taken still. A type or an enum value no longer taken (an enum narrowed, an enum where any value
  went, a type gone from an `anyOf`), a field or parameter gone, a field or parameter required now: broken.
- What a service SENDS (responses, published events): whoever reads it relies on every field still being there,
  still required, with its type, and on no type it does not know. A field gone or optional now, a type new in an
  `anyOf`, an enum value gone: broken.

Adding is not breaking: an optional field or parameter, a type or an enum value taken, a field sent, a response.
Pure functions over the JSON documents; tests/deploy/test_api_docs.py runs them on every service's documents and
tests/unit/test_api_compat.py on small ones.
"""

from dataclasses import dataclass, field
from typing import Any

METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
ANY = "any"
MAX_DEPTH = 24


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow local `$ref`s until a real object."""
    seen = 0
    while "$ref" in node and seen < MAX_DEPTH:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node, seen = target, seen + 1
    return node


@dataclass
class Shape:
    """A schema flattened through `$ref`, `anyOf`, `oneOf` and `allOf`: what values it takes, as sets."""

    types: set[str] = field(default_factory=set)
    enum: set[str] | None = None  # None: any value of its types
    properties: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)  # name -> (doc, node)
    required: set[str] = field(default_factory=set)
    items: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)


def _types_of(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, list):
        return set(declared)
    if isinstance(declared, str):
        return {declared}
    value = node["const"] if "const" in node else (node.get("enum") or [None])[0]
    kinds = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}
    return {kinds.get(type(value), ANY)} if ("const" in node or "enum" in node) else {ANY}


def _key(value: Any) -> str:
    return repr(value)


def shape(doc: dict[str, Any], node: dict[str, Any], depth: int = 0) -> Shape:
    """The values `node` (of `doc`) takes, flattened."""
    node = resolve(doc, node)
    members = node.get("anyOf") or node.get("oneOf")
    if members and depth < MAX_DEPTH:
        out = Shape(enum=set())
        parts = [shape(doc, m, depth + 1) for m in members]
        for part in parts:
            out.types |= part.types
            if out.enum is not None and part.types != {"null"}:
                out.enum = None if part.enum is None else out.enum | part.enum
            for name, where in part.properties.items():
                out.properties.setdefault(name, where)
            out.items += part.items
        objects = [p for p in parts if "object" in p.types]
        out.required = set.intersection(*(p.required for p in objects)) if objects else set()
        return out
    out = Shape(types=_types_of(node))
    if "enum" in node or "const" in node:
        out.enum = {_key(v) for v in (node["enum"] if "enum" in node else [node["const"]]) if v is not None}
    for member in node.get("allOf", []) if depth < MAX_DEPTH else []:
        part = shape(doc, member, depth + 1)
        if part.types != {ANY}:
            out.types = part.types if out.types == {ANY} else out.types & part.types or out.types
        out.enum = part.enum if out.enum is None else out.enum if part.enum is None else out.enum & part.enum
        out.properties.update(part.properties)
        out.required |= part.required
        out.items += part.items
    for name, sub in node.get("properties", {}).items():
        out.properties[name] = (doc, sub)
    out.required |= set(node.get("required", []))
    if "items" in node:
        out.items.append((doc, node["items"]))
    if out.properties and out.types == {ANY}:
        out.types = {"object"}
    return out


def _taken(types: set[str], kind: str) -> bool:
    return ANY in types or kind in types or (kind == "integer" and "number" in types)


def breaks(
    old_doc: dict[str, Any],
    old: dict[str, Any],
    new_doc: dict[str, Any],
    new: dict[str, Any],
    path: str,
    *,
    receiving: bool,
    optional_null: bool = False,
    depth: int = 0,
) -> list[str]:
    """What in `new` breaks someone who relied on `old`, at `path`; `receiving`: what the service receives.

    `optional_null`: a null is no value at all there (a parameter: absent or a string, never null).
    """
    if depth > MAX_DEPTH:
        return []
    before, after = shape(old_doc, old), shape(new_doc, new)
    if optional_null:
        before.types.discard("null")
        after.types.discard("null")
    problems = []
    if receiving:
        gone = sorted(t for t in before.types if not _taken(after.types, t))
        if gone:
            problems.append(f"{path}: no longer takes {', '.join(gone)}")
        if after.enum is not None and before.enum is None and before.types & {"string", "integer", "number"}:
            problems.append(f"{path}: takes only {', '.join(sorted(after.enum))} now")
        elif after.enum is not None and before.enum is not None and before.enum - after.enum:
            problems.append(f"{path}: no longer takes {', '.join(sorted(before.enum - after.enum))}")
        added = sorted(after.required - before.required)
        if added:
            problems.append(f"{path}: requires {', '.join(added)} now")
    else:
        new_types = sorted(t for t in after.types if not _taken(before.types, t) and t != ANY)
        if new_types or (ANY in after.types and ANY not in before.types):
            problems.append(f"{path}: may now be {', '.join(new_types) or 'anything'}")
        if before.enum is not None and after.enum is not None and before.enum - after.enum:
            problems.append(f"{path}: values {', '.join(sorted(before.enum - after.enum))} are gone")
        loose = sorted(before.required - after.required)
        if loose:
            problems.append(f"{path}: {', '.join(loose)} may be missing now")
    for name, (doc, sub) in before.properties.items():
        if name not in after.properties:
            problems.append(f"{path}.{name} is gone")
            continue
        new_sub_doc, new_sub = after.properties[name]
        problems += breaks(doc, sub, new_sub_doc, new_sub, f"{path}.{name}", receiving=receiving, depth=depth + 1)
    if before.items and after.items:
        (doc, sub), (new_sub_doc, new_sub) = before.items[0], after.items[0]
        problems += breaks(doc, sub, new_sub_doc, new_sub, f"{path}[]", receiving=receiving, depth=depth + 1)
    return problems


# ---------------------------------------------------------------- OpenAPI


def _parameters(doc: dict[str, Any], operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(in, name) -> parameter, the API-key security schemes among them (a key moved there is still taken)."""
    found = {}
    for parameter in operation.get("parameters", []):
        parameter = resolve(doc, parameter)
        found[(parameter["in"], parameter["name"].lower() if parameter["in"] == "header" else parameter["name"])] = (
            parameter
        )
    schemes = doc.get("components", {}).get("securitySchemes", {})
    for requirement in operation.get("security", []):
        for name in requirement:
            scheme = schemes.get(name, {})
            if scheme.get("type") == "apiKey":
                where = scheme["in"], scheme["name"].lower() if scheme["in"] == "header" else scheme["name"]
                found.setdefault(where, {"in": scheme["in"], "name": scheme["name"], "schema": {"type": "string"}})
    return found


# FastAPI's own validation error body, which the released documents declared for 422 although every service
# answers it as problem details (libs/http.py): nobody could rely on a body no service ever sent.
_NEVER_SENT = "#/components/schemas/HTTPValidationError"


def openapi_breaks(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in the OpenAPI document `new` breaks a client of `old`."""
    problems = []
    for route, item in old.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            label = f"{method.upper()} {route}"
            current = new.get("paths", {}).get(route, {}).get(method)
            if current is None:
                problems.append(f"{label} is gone")
                continue
            problems += _operation_breaks(old, operation, new, current, label)
    return problems


def _operation_breaks(
    old: dict[str, Any], operation: dict[str, Any], new: dict[str, Any], current: dict[str, Any], label: str
) -> list[str]:
    problems = []
    before, after = _parameters(old, operation), _parameters(new, current)
    for (where, name), parameter in before.items():
        path = f"{label} {where} {name}"
        if (where, name) not in after:
            problems.append(f"{path} is gone")
            continue
        problems += breaks(
            old,
            parameter.get("schema", {}),
            new,
            after[(where, name)].get("schema", {}),
            path,
            receiving=True,
            optional_null=True,
        )
    for (where, name), parameter in after.items():
        if (where, name) not in before and parameter.get("required"):
            problems.append(f"{label} {where} {name} is required now")
    old_body = resolve(old, operation.get("requestBody", {}))
    new_body = resolve(new, current.get("requestBody", {}))
    if new_body.get("required") and not old_body.get("required"):
        problems.append(f"{label} requires a body now")
    for media, content in old_body.get("content", {}).items():
        taken = new_body.get("content", {}).get(media)
        if taken is None:
            problems.append(f"{label} body {media} is no longer taken")
            continue
        problems += breaks(
            old, content.get("schema", {}), new, taken.get("schema", {}), f"{label} body", receiving=True
        )
    new_answers = current.get("responses", {})
    for status, answer in operation.get("responses", {}).items():
        if status not in new_answers:
            continue
        answer, now = resolve(old, answer), resolve(new, new_answers[status])
        for media, content in answer.get("content", {}).items():
            sent = now.get("content", {}).get(media)
            schema = content.get("schema", {})
            if sent is None or schema.get("$ref") == _NEVER_SENT:
                continue
            problems += breaks(old, schema, new, sent.get("schema", {}), f"{label} {status} {media}", receiving=False)
    return problems
