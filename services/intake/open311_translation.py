"""Open311 GeoReport v2 as this platform speaks it: the spec's services, attributes, request documents and
error lists, translated to and from appeals, without I/O; the HTTP views that use them are
services/intake/open311.py."""

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from libs.config import Catalogue, CategoryEntry, City
from libs.kinds import AppealStatus
from services.intake.models import AppealIn

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-22T00:00:00Z"  # when this facade's services or attributes last changed
MAX_SPAN = timedelta(days=90)
MAX_RESULTS = 1000
FLAGS = {"key_enterprise": "On a government key-SME list", "epidemic_supplies": "Produces prevention materials"}
CLOSED = {AppealStatus.resolved, AppealStatus.confirmed, AppealStatus.closed, AppealStatus.rejected}

# Open311 names of the fields of AppealIn, for error messages a 311 client can act on.
FIELD_NAMES = {
    "enterprise.uscc": "attribute[uscc]",
    "enterprise.name": "attribute[enterprise_name]",
    "enterprise.employees": "attribute[employees]",
    "enterprise.industry": "attribute[industry]",
    "enterprise.district": "attribute[district]",
    "title": "attribute[title]",
    "flags": "attribute[flags]",
    "department": "attribute[department]",
    "channel_ref": "attribute[channel_ref]",
    "contact.name": "first_name/last_name",
    "contact.phone": "phone",
    "contact.email": "email",
    "description": "description",
    "attachments": "media_url",
}


class Open311Error(Exception):
    """An error the spec's way: HTTP status plus a description naming what is wrong."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


# What the OpenAPI document says of the facade: GeoReport's own refusals (a list of `{code, description}`), the one
# format served, and the form a request is posted as.
ERRORS_SCHEMA = {
    "title": "GeoReportErrors",
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["code", "description"],
        "properties": {"code": {"type": "integer"}, "description": {"type": "string"}},
    },
}


def geo_errors(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring that these statuses answer with GeoReport's error list."""
    return {
        code: {"description": text, "content": {"application/json": {"schema": ERRORS_SCHEMA}}}
        for code, text in descriptions.items()
    }


READ_ERRORS = geo_errors(
    {
        400: "GeoReport's refusal of a request it cannot answer: a format other than json, a malformed date, a span "
        "over 90 days, a status other than open and closed",
        403: "An api_key that is not valid, or none where a list needs one",
        404: "No such jurisdiction, service or request",
    }
)
POST_ERRORS = geo_errors(
    {
        400: "GeoReport's refusal of a request it cannot take: a format other than json, a field missing or invalid "
        "(named as the form names it)",
        403: "No api_key, or one that is not a channel's, or a field the channel may not give",
        404: "No such jurisdiction or service",
        409: "attribute[channel_ref] was used before with another request",
        503: "Nothing was accepted; post it again after Retry-After",
    }
)
Format = Annotated[
    str, Path(description="The format of the answer: json (xml is not served).", json_schema_extra={"enum": ["json"]})
]
_FORM_FIELD = {"type": "string"}
REQUEST_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": [
                        "service_code",
                        "attribute[uscc]",
                        "attribute[enterprise_name]",
                        "attribute[employees]",
                        "attribute[industry]",
                        "attribute[district]",
                        "phone",
                        "description",
                    ],
                    "properties": {
                        name: _FORM_FIELD
                        for name in (
                            "service_code",
                            "api_key",
                            "jurisdiction_id",
                            "attribute[uscc]",
                            "attribute[enterprise_name]",
                            "attribute[employees]",
                            "attribute[industry]",
                            "attribute[district]",
                            "attribute[title]",
                            "attribute[flags]",
                            "attribute[department]",
                            "attribute[channel_ref]",
                            "first_name",
                            "last_name",
                            "phone",
                            "email",
                            "description",
                            "media_url",
                        )
                    },
                }
            }
        },
    }
}


def errors_response(status: int, *descriptions: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The spec's error body: a list of `{code, description}`."""
    return JSONResponse([{"code": status, "description": d} for d in descriptions], status_code=status, headers=headers)


def service_list(catalogue: Catalogue) -> list[dict[str, Any]]:
    """`services.json`: every category as a service."""
    return [
        {
            "service_code": c.code.value,
            "service_name": c.name,
            "description": c.description,
            "metadata": True,
            "type": "realtime",
            "keywords": ", ".join(c.keywords),
            "group": c.group,
        }
        for c in catalogue.categories
    ]


def service_definition(entry: CategoryEntry, city: City) -> dict[str, Any]:
    """`services/{code}.json`: the enterprise fields every appeal carries, as attributes."""

    def attr(code: str, datatype: str, required: bool, description: str, values: Mapping[str, str] | None = None):
        out = {
            "variable": True,
            "code": code,
            "datatype": datatype,
            "required": required,
            "datatype_description": None,
            "description": description,
        }
        if values is not None:
            out["values"] = [{"key": k, "name": v} for k, v in values.items()]
        return out

    attributes = [
        attr("uscc", "string", True, "Unified social credit code: 18 characters, check character per GB 32100-2015."),
        attr("enterprise_name", "string", True, "Registered company name."),
        attr("employees", "number", True, "Number of employees."),
        attr("industry", "string", True, "Industry, in a few words."),
        attr(
            "district",
            "singlevaluelist",
            True,
            "District of the registered seat.",
            {d.code: d.name for d in city.districts},
        ),
        attr("title", "string", False, "Short title; the start of the description when left out."),
        attr("flags", "multivaluelist", False, "What the company declares; no faster deadline.", FLAGS),
        attr(
            "department",
            "singlevaluelist",
            False,
            "The department the company chooses: it leads, and has six hours to say whether the matter is its own.",
            {d.code: d.name for d in city.departments if d.active},
        ),
        attr(
            "channel_ref",
            "string",
            False,
            "Your own id for this request: posting it again returns the same "
            "request. When left out, an identical post returns the same request.",
        ),
    ]
    for order, attribute in enumerate(attributes, start=1):
        attribute["order"] = order
    return {"service_code": entry.code.value, "attributes": attributes}


def appeal_from_form(form: list[tuple[str, str]], service_code: str) -> AppealIn:
    """Translate a GeoReport v2 POST into an appeal; Open311Error(400) names the fields that are wrong."""
    single: dict[str, str] = {}
    flags: list[str] = []
    for key, value in form:
        if key in ("attribute[flags]", "attribute[flags][]"):
            flags.extend(v for v in value.split(",") if v)
        else:
            single[key] = value
    attribute = {
        k[len("attribute[") : -1]: v for k, v in single.items() if k.startswith("attribute[") and k.endswith("]")
    }
    description = single.get("description", "").strip()
    name = " ".join(p for p in (single.get("first_name", "").strip(), single.get("last_name", "").strip()) if p)
    media = single.get("media_url")
    body: dict[str, Any] = {
        "channel_ref": attribute.get("channel_ref") or _derived_ref(form),
        "enterprise": {
            "uscc": attribute.get("uscc"),
            "name": attribute.get("enterprise_name"),
            # A form carries text: the count as a number for AppealIn, which takes JSON's integers only.
            "employees": _whole(attribute.get("employees")),
            "industry": attribute.get("industry"),
            "district": attribute.get("district"),
        },
        "contact": {"name": name or None, "phone": single.get("phone") or None},
        "category": service_code,
        "title": attribute.get("title") or _title_from(description),
        "description": description,
        "attachments": [media] if media else [],
        "flags": flags,
        "department": attribute.get("department") or None,
    }
    if single.get("email"):
        body["contact"]["email"] = single["email"]
    unknown = sorted(set(flags) - set(FLAGS))
    try:
        appeal = AppealIn.model_validate(body)
    except ValidationError as exc:
        raise Open311Error(400, "; ".join(_describe(err) for err in exc.errors())) from exc
    if unknown:
        raise Open311Error(400, f"attribute[flags]: unknown values {', '.join(unknown)}; known: {', '.join(FLAGS)}")
    return appeal


def _whole(value: str | None) -> int | str | None:
    """A form's count as an integer when it is written in digits; anything else as it came, to be refused."""
    return int(value) if value is not None and value.isascii() and value.isdigit() else value


def _describe(err: Mapping[str, Any]) -> str:
    field = ".".join(str(p) for p in err.get("loc", ()))
    name = next((v for k, v in FIELD_NAMES.items() if field == k or field.startswith(k + ".")), field)
    message = (
        "is required"
        if err.get("type") in ("missing", "none_required") or err.get("input") is None
        else err.get("msg", "is invalid")
    )
    return f"{name}: {message}"


def _derived_ref(form: list[tuple[str, str]]) -> str:
    """An idempotency key from the post itself, for 311 clients that have no id of their own."""
    content = sorted((k, v) for k, v in form if k not in ("api_key", "jurisdiction_id"))
    return "o311-" + hashlib.sha256(repr(content).encode()).hexdigest()[:32]


def _title_from(description: str) -> str:
    first = description.split("\n", 1)[0]
    for stop in (". ", "。", "? ", "！", "!"):
        first = first.split(stop, 1)[0]
    return first[:80].strip()


def status_of(status: str) -> str:
    """Open311 knows open and closed: resolved, confirmed, closed and rejected appeals are closed."""
    return "closed" if status in CLOSED else "open"


_NOTES = {
    "submitted": "Received; being routed to the responsible department.",
    "routed": "Assigned to {dept}.",
    "rerouted": "Assigned to {dept} after a decline.",
    "transferred": "Transferred to {dept}.",
    "accepted": "{dept} is working on it.",
    "info_requested": "{dept} asked the company for information.",
    "declined": "{dept} declined it as outside its remit; it is being routed again.",
    "resolved": "{dept} resolved it; waiting for the company's confirmation.",
    "reopened": "The company said it is not solved; {dept} takes it up again.",
    "confirmed": "The company confirmed the resolution.",
    "closed": "Closed.",
    "rejected": "Not admitted.",
}


def request_view(record: dict[str, Any], city: City, catalogue: Catalogue, full: bool) -> dict[str, Any]:
    """One service request as GeoReport v2 shows it; company data only when `full`."""
    department = city.department(record["department"]) if record.get("department") else None
    dept_name = department.name if department else "the department"
    notes = _NOTES.get(record["status"], record["status"]).format(dept=dept_name)
    if full:
        detail = record.get("resolution") or record.get("guidance") or record.get("reason")
        notes = f"{notes} {detail}" if detail else notes
    entry = catalogue.entry(record["category"])
    return {
        "service_request_id": record["_id"],
        "status": status_of(record["status"]),
        "status_notes": notes,
        "service_name": entry.name if entry else record["category"],
        "service_code": record["category"],
        "description": record.get("description") if full else None,
        "agency_responsible": department.name if department else None,
        "service_notice": None,
        "requested_datetime": _w3c(record.get("submitted_at")),
        "updated_datetime": _w3c(record.get("updated_at")),
        "expected_datetime": _w3c(_resolution_due(record)),
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": None,
        "long": None,
        "media_url": (record.get("attachments") or [None])[0] if full else None,
    }


def _resolution_due(record: dict[str, Any]) -> datetime | None:
    running = [c for c in record.get("clocks", {}).values() if c["clock"] == "resolution" and c["state"] == "running"]
    return max(running, key=lambda c: c["at"])["due_at"] if running else None


def _w3c(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat(timespec="seconds")


def parse_w3c(value: str, name: str) -> datetime:
    """A W3C datetime query parameter, as an aware UTC datetime, or Open311Error(400)."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Open311Error(400, f"{name}: {value!r} is not a W3C datetime such as 2026-03-03T00:00:00Z") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def json_only(fmt: str) -> None:
    if fmt != "json":
        raise Open311Error(400, f"format {fmt!r} is not served; use .json")
