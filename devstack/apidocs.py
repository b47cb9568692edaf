"""The API documents of the five services: OpenAPI from each FastAPI app, AsyncAPI from each FastStream broker.

`python -m devstack apidocs` writes them to `docs/api/`; `--check` says which
committed ones are stale. Apps are built offline (nothing connects) from
settings that ignore the environment, so the documents are the same on every
machine and every run.
"""

import importlib
import json
import operator
from collections.abc import Callable, Iterable
from functools import cache, reduce
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel, Field, RootModel, create_model
from pydantic_settings import BaseSettings

from libs.config import load_city
from libs.events import DATA_MODELS, CloudEvent, EventType
from libs.settings import PROJECT_ROOT, ServiceSettings
from libs.topics import (
    APPEALS_ACTIONS,
    APPEALS_COMPANY,
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED,
    NOTIFY_DELIVERIES,
    SLA_EVENTS,
    department_topic,
)

SERVICES = ("intake", "router", "sla", "notify", "stats")
DEFAULT_OUT = PROJECT_ROOT / "docs" / "api"
# 3.0.0 is FastStream's default and keeps a service's sends and receives apart as
# operations on shared channels; 2.6.0's publish/subscribe read from the client's side.
ASYNCAPI_VERSION = "3.0.0"

_E = EventType
_APPEAL_CHANGES = tuple(t for t in EventType if t.startswith("appeal.") and t != _E.appeal_submitted)
_SLA_CHANGES = tuple(t for t in EventType if t.startswith("sla."))

# Each envelope is a CloudEvent whose `type` is one of its event types and whose `data` is their shared model.
ENVELOPES: dict[str, tuple[EventType, ...]] = {
    "AppealSubmittedEvent": (_E.appeal_submitted,),
    "AppealLifecycleEvent": _APPEAL_CHANGES,
    "DepartmentActionEvent": (_E.department_action,),
    "CompanyInfoProvidedEvent": (_E.company_info_provided,),
    "CompanyFeedbackEvent": (_E.company_feedback,),
    "SlaClockEvent": _SLA_CHANGES,
    "SlaAlertEvent": (_E.sla_warning, _E.sla_breached),
    "AssignmentCreatedEvent": (_E.assignment_created,),
    "AssignmentWithdrawnEvent": (_E.assignment_withdrawn,),
    "ActionRejectedEvent": (_E.action_rejected,),
    "NotificationOutcomeEvent": (_E.notification_delivered, _E.notification_failed),
}

# What travels on each platform topic (DESIGN.md, "Events on Kafka").
TOPIC_ENVELOPES: dict[str, tuple[str, ...]] = {
    APPEALS_SUBMITTED: ("AppealSubmittedEvent",),
    APPEALS_LIFECYCLE: ("AppealLifecycleEvent",),
    APPEALS_ACTIONS: ("DepartmentActionEvent",),
    APPEALS_COMPANY: ("CompanyInfoProvidedEvent", "CompanyFeedbackEvent"),
    SLA_EVENTS: ("SlaClockEvent",),
    NOTIFY_DELIVERIES: ("NotificationOutcomeEvent",),
}

# What each service publishes with `broker.publish`, which FastStream cannot see; `None` stands for
# every department's `dept.<code>.v1`, listed from the city configuration.
PUBLISHED: dict[str, tuple[tuple[str | None, tuple[str, ...]], ...]] = {
    "intake": ((APPEALS_SUBMITTED, TOPIC_ENVELOPES[APPEALS_SUBMITTED]),
               (APPEALS_COMPANY, TOPIC_ENVELOPES[APPEALS_COMPANY])),
    "router": ((APPEALS_LIFECYCLE, TOPIC_ENVELOPES[APPEALS_LIFECYCLE]),
               (None, ("AssignmentCreatedEvent", "AssignmentWithdrawnEvent", "ActionRejectedEvent"))),
    "sla": ((SLA_EVENTS, TOPIC_ENVELOPES[SLA_EVENTS]),
            (None, ("SlaAlertEvent",))),
    "notify": ((NOTIFY_DELIVERIES, TOPIC_ENVELOPES[NOTIFY_DELIVERIES]),),
    "stats": (),
}


def _envelope(name: str, types: tuple[EventType, ...]) -> type[BaseModel]:
    data = DATA_MODELS[types[0]]
    return create_model(
        name, __base__=CloudEvent[data], __doc__=f"CloudEvents 1.0 envelope. {data.__doc__}",  # type: ignore[valid-type]
        type=(Literal[tuple(t.value for t in types)], Field(description="Event type.", examples=[types[0].value])),
    )


_MODELS = {name: _envelope(name, types) for name, types in ENVELOPES.items()}


@cache
def _payload(names: tuple[str, ...], union_name: str) -> Any:
    """One envelope, or a named union of them so that its schema has a stable name in the document."""
    models = tuple(_MODELS[n] for n in names)
    if len(models) == 1:
        return models[0]
    return create_model(union_name, __base__=RootModel[reduce(operator.or_, models)],  # type: ignore[misc]
                        __doc__="One of: " + ", ".join(names) + ".")


def _topic_payload(topic: str, names: tuple[str, ...]) -> Any:
    return _payload(names, "".join(part.capitalize() for part in topic.replace("-", ".").split(".")) + "Events")


def _documented_handler(payload: Any) -> Callable[..., Any]:
    # The annotation is set below: the payload type is only known at run time.
    async def handle(event):
        """Never called: FastStream reads the payload schema from this signature."""

    handle.__annotations__ = {"event": payload, "return": None}
    return handle


def offline_settings(settings_class: type[ServiceSettings]) -> ServiceSettings:
    """The service's default settings, deaf to the environment and .env files."""

    class Offline(settings_class):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings, **_):
            return (init_settings,)

    return Offline()


def build_app(service: str) -> FastAPI:
    """The service's FastAPI app with default settings; nothing is connected."""
    settings_class = getattr(importlib.import_module(f"services.{service}.settings"), f"{service.capitalize()}Settings")
    return importlib.import_module(f"services.{service}.app").create_app(offline_settings(settings_class))


def documented_broker(service: str, app: FastAPI) -> KafkaBroker:
    """A never-started broker mirroring the service's subscribers, with payload types, and its publishers."""
    # The service's subscribers take the raw message so that they can dead-letter what does not
    # validate, which leaves FastStream no payload type to document: each is mirrored here, one
    # per topic, with that topic's envelopes. Declaring the publishers on the mirror rather than
    # on the service's broker keeps this out of every run-time code path.
    runtime = app.state.runtime
    broker: KafkaBroker = runtime.broker
    docs = KafkaBroker(runtime.settings.kafka_bootstrap_servers)
    for sub in broker.subscribers:
        spec = sub.specification
        topics = spec.topics
        for topic in topics:
            title = spec.config.title_ if len(topics) == 1 else f"{spec.config.title_}:{topic}"
            docs.subscriber(topic, title=title, description=spec.description)(
                _documented_handler(_topic_payload(topic, TOPIC_ENVELOPES[topic])))
    departments = load_city(runtime.settings.config_dir).departments
    for topic, names in PUBLISHED[service]:
        types = ", ".join(t for n in names for t in ENVELOPES[n])
        if topic is not None:
            docs.publisher(topic, title=f"{topic}:{service}", description=f"{service} publishes {types}.",
                           schema=_topic_payload(topic, names))
            continue
        schema = _payload(names, "DepartmentTopicEvents")
        for dept in departments:
            dept_topic = department_topic(dept.code)
            docs.publisher(dept_topic, title=f"{dept_topic}:{service}", schema=schema,
                           description=f"For {dept.name} ({dept.code})'s own systems: {service} publishes {types}.")
    return docs


def asyncapi_document(service: str, app: FastAPI) -> dict[str, Any]:
    """The AsyncAPI document FastStream generates for the service."""
    spec = AsyncAPI(documented_broker(service, app), title=f"{app.title} (Kafka)", version=app.version,
                    description=app.description, identifier=f"urn:appeals-platform:{service}",
                    schema_version=ASYNCAPI_VERSION)
    return spec.to_specification().to_jsonable()


def render(document: dict[str, Any]) -> str:
    """Pretty, key-sorted JSON with a trailing newline, so the same document is the same bytes."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def build_documents(services: Iterable[str] = SERVICES) -> dict[str, str]:
    """File name -> text of every service's OpenAPI and AsyncAPI document."""
    documents: dict[str, str] = {}
    for service in services:
        app = build_app(service)
        documents[f"{service}.openapi.json"] = render(app.openapi())
        documents[f"{service}.asyncapi.json"] = render(asyncapi_document(service, app))
    return documents


def write_documents(out: Path = DEFAULT_OUT) -> list[Path]:
    """Write every document to `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_documents().items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written


def stale_documents(out: Path = DEFAULT_OUT) -> list[Path]:
    """The documents in `out` that are missing or differ from what would be generated."""
    return [out / name for name, text in build_documents().items()
            if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text]
