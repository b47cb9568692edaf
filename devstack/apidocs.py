"""The API documents of the five services: OpenAPI from each FastAPI app, AsyncAPI from each FastStream broker.

`python -m devstack apidocs` writes them to `docs/api/`; `--check` says which
committed ones are stale. Apps are built offline (nothing connects) from
settings that ignore the environment, so the documents are the same on every
machine and every run.
"""

import importlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from faststream.specification import AsyncAPI
from pydantic_settings import BaseSettings

from libs import contract
from libs.contract import SERVICE_NAMES, payload_of, topic
from libs.kafka import consuming as kafka
from libs.settings import PROJECT_ROOT, ServiceSettings

SERVICES = SERVICE_NAMES
DEFAULT_OUT = PROJECT_ROOT / "docs" / "api"
ARCHITECTURE = PROJECT_ROOT / "docs" / "architecture.md"
# 3.0.0 is FastStream's default and keeps a service's sends and receives apart as
# operations on shared channels; 2.6.0's publish/subscribe read from the client's side.
ASYNCAPI_VERSION = "3.0.0"


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


def asyncapi_document(service: str, app: FastAPI) -> dict[str, Any]:
    """The AsyncAPI document of the service's own broker: its typed subscribers and declared publishers."""
    spec = AsyncAPI(
        app.state.runtime.broker,
        title=f"{app.title} (Kafka)",
        version=app.version,
        description=app.description,
        identifier=f"urn:appeals-platform:{service}",
        schema_version=ASYNCAPI_VERSION,
    )
    return one_event_per_record(spec.to_specification().to_jsonable())


def one_event_per_record(document: dict[str, Any]) -> dict[str, Any]:
    """Each subscribed channel's message is what one record on its topic holds: the topic's envelopes.

    FastStream documents a handler's argument: a batch consumer's list, and for a consumer
    of several topics the union of all their envelopes on each. On the wire each record is
    one event, and the contract says which envelopes each topic carries.
    """
    schemas = document["components"]["schemas"]
    messages = document["components"]["messages"]
    replaced = set()
    for channel in document["channels"].values():
        entry = topic(channel["address"])
        refs = [messages[ref["$ref"].rsplit("/", 1)[1]] for ref in channel["messages"].values()]
        generated = [m for m in refs if m["payload"].get("$ref", "").endswith(":Message:Payload")]
        if entry is None or not generated:
            continue
        payload_model = payload_of(entry.envelopes, entry.name)
        names = [envelope.__name__ for envelope in entry.envelopes]
        if len(names) > 1:
            schemas.setdefault(
                payload_model.__name__,
                {
                    "anyOf": [{"$ref": f"#/components/schemas/{n}"} for n in names],
                    "description": payload_model.__doc__,
                    "title": payload_model.__name__,
                },
            )
        for message in generated:
            replaced.add(message["payload"]["$ref"].rsplit("/", 1)[1])
            message["payload"] = {"$ref": f"#/components/schemas/{payload_model.__name__}"}
    for name in replaced:
        schemas.pop(name, None)
    return document


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


def _delivery(c: contract.Consumer) -> str:
    return "batches, gathered" if c.gathers else "batches" if c.batch else "one by one"


def architecture_document() -> str:
    """docs/architecture.md: the services, topics and consumer groups of libs/contract.py, and how events flow."""

    def node(name: str) -> str:
        return name.replace(".", "_").replace("<", "").replace(">", "").replace("-", "_")

    lines = [
        "# Architecture",
        "",
        "Generated from `libs/contract.py` by `make apidocs` (the tests fail when it is stale); edit the",
        "contract, not this file. Each service is its own process with its own MongoDB database; Kafka is",
        "the only way state crosses from one service to another. Every record is a CloudEvents 1.0 event",
        "in structured JSON mode, keyed by the appeal id so that one appeal's events stay in order.",
        "",
        "## Services",
        "",
        "| service | port | what it does |",
        "|---|---|---|",
    ]
    lines += [f"| {s.name} | {s.port} | {s.role} |" for s in contract.SERVICES]
    lines += ["", "## How events flow", "", "```mermaid", "flowchart LR"]
    everything = (*contract.TOPICS, contract.DEPARTMENT_TOPIC)
    for entry in everything:
        label = entry.name.replace("<", "#lt;").replace(">", "#gt;")
        lines.append(f'    {node(entry.name)}[/"{label}"/]')
    for entry in everything:
        for producer in entry.producers:
            lines.append(f"    {node(producer)}([{producer}]) --> {node(entry.name)}")
    for consumer in contract.CONSUMERS:
        for name in consumer.topics:
            lines.append(f"    {node(name)} -- {consumer.group} --> {node(consumer.service)}")
    lines += [
        f"    {node(contract.DEPARTMENT_TOPIC.name)} --> departments",
        "```",
        "",
        "## Topics",
        "",
        f"Every topic has {contract.PARTITIONS} partitions (KAFKA_PARTITIONS) and keeps its events for good "
        "(`retention.ms=-1`): stats is rebuilt from them.",
        "",
        "| topic | what it holds | written by | event types | read by (group) |",
        "|---|---|---|---|---|",
    ]
    for entry in everything:
        readers = ", ".join(c.group for c in contract.CONSUMERS if entry.name in c.topics) or "departments' systems"
        for producer, envelopes in entry.producers.items():
            types = ", ".join(f"`{t}`" for e in envelopes for t in e.TYPES)
            lines.append(f"| `{entry.name}` | {entry.about} | {producer} | {types} | {readers} |")
    lines += [
        f"| `{contract.DEAD_LETTERS}` | What a consumer of the topic could not read, with the reason in "
        "headers; on `notify.deliveries.v1.dlq`, the notifications notify gave up on. | any consumer | "
        "the original bytes | operators |",
        "",
        "## Consumers",
        "",
        "A group is `<service>.<name>`; a renamed group reads its topics again from the beginning. Batches "
        f"*gathered* are read once {kafka.GATHER_BYTES // 1024} KB are there or {kafka.GATHER_WAIT_MS} ms have "
        "passed: nobody waits on that work within the second, and larger batches cost fewer statements and "
        "requests per event.",
        "",
        "| group | reads | delivery | what it does |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{c.group}` | {', '.join(f'`{t}`' for t in c.topics)} | {_delivery(c)} | {c.does} |"
        for c in contract.CONSUMERS
    ]
    return "\n".join(lines) + "\n"


def write_documents(out: Path = DEFAULT_OUT) -> list[Path]:
    """Write every document to `out`, and docs/architecture.md; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in build_documents().items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    ARCHITECTURE.write_text(architecture_document(), encoding="utf-8")
    return [*written, ARCHITECTURE]


def stale_documents(out: Path = DEFAULT_OUT) -> list[Path]:
    """The documents in `out` (and docs/architecture.md) that are missing or differ from what would be generated."""
    stale = [
        out / name
        for name, text in build_documents().items()
        if not (out / name).is_file() or (out / name).read_text(encoding="utf-8") != text
    ]
    if not ARCHITECTURE.is_file() or ARCHITECTURE.read_text(encoding="utf-8") != architecture_document():
        stale.append(ARCHITECTURE)
    return stale
