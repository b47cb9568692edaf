"""The platform's Kafka contract in one table: the services, every topic with what it carries and who
writes it, and every consumer with its group.

Everything that names a topic, checks an event's topic or joins a group derives from here: topic
creation (`libs.kafka.ensure_topics`), the check that an event travels on its topic (`parse_event`),
the groups the services join (`libs.kafka.subscribe`), the AsyncAPI documents and
`docs/architecture.md` (`devstack/apidocs.py`, both checked for drift in the tests), the embedded stack's
list of services and the crash tests' list of groups.

The names are the wire contract. A renamed topic is another topic; a renamed group has no committed
offsets and reads its topics again from the beginning. `tests/unit/test_contract.py` pins them.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from types import MappingProxyType
from typing import Annotated, Any, Union

from pydantic import Field, RootModel, TypeAdapter, ValidationError, create_model

from libs.envelopes import (
    ActionRejectedEvent,
    AppealContactErasedEvent,
    AppealContactEvent,
    AppealFiledEvent,
    AppealLifecycleEvent,
    AppealSubmittedEvent,
    AssignmentCreatedEvent,
    AssignmentWithdrawnEvent,
    CloudEvent,
    CompanyFeedbackEvent,
    CompanyInfoProvidedEvent,
    CompanyMessageEvent,
    DepartmentActionEvent,
    EnterpriseEvent,
    Envelope,
    NotificationOutcomeEvent,
    RawEvent,
    SlaAlertEvent,
    SlaClockEvent,
    SlaReportedEvent,
)
from libs.events import DATA_MODELS
from libs.kinds import EventType


@dataclass(frozen=True)
class Service:
    """A service of the platform: its name (package, settings prefix, database, group prefix) and default port."""

    name: str
    port: int
    role: str


SERVICES = (
    Service("intake", 8001, "HTTP intake for channel adapters, company status and answers, the Open311 facade"),
    Service("router", 8002, "routing, the appeal lifecycle, department actions and worklists"),
    Service("sla", 8003, "SLA clocks on business calendars: warnings, breaches, escalation"),
    Service("notify", 8004, "notifications to companies, departments and supervisors"),
    Service("stats", 8005, "counts, department rates, the daily report, the operator dashboard"),
)
SERVICE_NAMES = tuple(service.name for service in SERVICES)
# Pages for people, over the public HTTP APIs of intake and router: no topic, no database of its own.
WEB = Service("web", 8007, "pages for people: the company portal and the department workbench")

APPEALS_SUBMITTED = "appeals.submitted.v1"
APPEALS_SUBMITTED_V2 = "appeals.submitted.v2"
APPEALS_CONTACTS = "appeals.contacts.v1"
APPEALS_LIFECYCLE = "appeals.lifecycle.v1"
APPEALS_ACTIONS = "appeals.actions.v1"
APPEALS_COMPANY = "appeals.company.v1"
SLA_EVENTS = "sla.events.v1"
SLA_EVENTS_V2 = "sla.events.v2"
NOTIFY_DELIVERIES = "notify.deliveries.v1"
ENTERPRISES = "enterprises.v1"
COMPANY_MESSAGES = "company.messages.v1"

# Partitions per topic unless a deployment sets KAFKA_PARTITIONS when it creates the topics. They bound
# the useful replicas of each consumer; a live topic never gets more (docs/scaling.md says why and how).
PARTITIONS = 4

# The platform's topics keep their events for good: stats must be rebuildable from them. None of them holds a
# contact, a token, a code or a link that opens an appeal (docs/privacy.md).
KEEP_FOR_GOOD: Mapping[str, str] = MappingProxyType({"retention.ms": "-1"})
# How long a record holding personal data may stay where it cannot be erased one by one: a department's topic
# (assignments carry the contact its clerks call) and every .dlq (a record as it was). The default retention of
# contacts after an appeal closes (docs/privacy.md); a department's system away for longer misses nothing it acts on.
PERSONAL_RETENTION = MappingProxyType({"retention.ms": str(180 * 24 * 3600 * 1000)})
# The contacts: compacted, so each appeal keeps its latest; an erasure's tombstone removes the value within a
# day (segments roll hourly, and the cleaner must reach a value a day after it was superseded at the latest), and
# the tombstone itself goes a day later.
CONTACTS_CONFIG = MappingProxyType(
    {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "segment.ms": str(3600 * 1000),
        "max.compaction.lag.ms": str(24 * 3600 * 1000),
        "delete.retention.ms": str(24 * 3600 * 1000),
        "min.cleanable.dirty.ratio": "0.1",
    }
)
BY_APPEAL = "appeal id (the event's subject), so that one appeal's events stay in order"
BY_COMPANY = "credit code (the event's subject): compaction keeps each company's latest state"
BY_PHONE = "a keyed hash of the phone (the event's subject): one phone's messages in order, no number in a key"


@dataclass(frozen=True)
class Topic:
    """A topic: what it is for, which envelopes each producer writes to it, its key and settings."""

    name: str
    about: str
    producers: Mapping[str, tuple[type[Envelope[Any]], ...]]
    key: str = BY_APPEAL
    config: Mapping[str, str] = field(default_factory=lambda: KEEP_FOR_GOOD)
    # Partitions it is created with; None: the deployment's count (KAFKA_PARTITIONS).
    partitions: int | None = None

    @property
    def envelopes(self) -> tuple[type[Envelope[Any]], ...]:
        """Every envelope on the topic, in the order of the producers'."""
        return tuple(dict.fromkeys(e for envelopes in self.producers.values() for e in envelopes))

    @property
    def carries(self) -> tuple[EventType, ...]:
        """Every event type on the topic."""
        return tuple(t for envelope in self.envelopes for t in envelope.TYPES)


TOPICS = (
    Topic(
        APPEALS_SUBMITTED,
        "Appeals intake accepted before contacts had a topic of their own, each with its contact and link: read until "
        "moved to appeals.submitted.v2 and appeals.contacts.v1, then emptied (services/intake/adopt.py).",
        {"intake": (AppealSubmittedEvent,)},
    ),
    Topic(
        APPEALS_SUBMITTED_V2,
        "Appeals intake accepted: what each is about and whose it is, without its contact or anything that opens it.",
        {"intake": (AppealFiledEvent,)},
    ),
    Topic(
        APPEALS_CONTACTS,
        "Each appeal's contact and the company's link, the latest kept; erased by a tombstone at the end of "
        "retention or on request. Only router and notify read it.",
        {"intake": (AppealContactEvent, AppealContactErasedEvent)},
        config=CONTACTS_CONFIG,
    ),
    Topic(
        APPEALS_LIFECYCLE, "Every transition of an appeal, from routed to closed.", {"router": (AppealLifecycleEvent,)}
    ),
    Topic(
        APPEALS_ACTIONS,
        "What departments' own systems decided on their assignments before each had a topic of its own "
        "(dept.<code>.actions.v1): router reads it until it is drained, and nobody may write it any more.",
        {"departments": (DepartmentActionEvent,)},
    ),
    Topic(
        APPEALS_COMPANY,
        "The company's answers: information asked for, feedback on a resolution.",
        {"intake": (CompanyInfoProvidedEvent, CompanyFeedbackEvent)},
    ),
    Topic(
        SLA_EVENTS,
        "Each clock of each appeal, one event per clock: started, paused, resumed, warned, breached, met, cancelled. "
        "Kept for readers that have not moved to sla.events.v2: sla writes it only with SLA_PUBLISH_V1.",
        {"sla": (SlaClockEvent,)},
    ),
    Topic(
        SLA_EVENTS_V2,
        "What each change did to an appeal's clocks, in one event: each clock's report under its sla.*.v1 id.",
        {"sla": (SlaReportedEvent,)},
    ),
    Topic(NOTIFY_DELIVERIES, "What became of each notification.", {"notify": (NotificationOutcomeEvent,)}),
    Topic(
        ENTERPRISES,
        "Each company of the registry as it is now: profile, government lists, liaison.",
        {"router": (EnterpriseEvent,)},
        key=BY_COMPANY,
        config=MappingProxyType({"cleanup.policy": "compact", "retention.ms": "-1"}),
    ),
    Topic(
        COMPANY_MESSAGES,
        "One-time codes and lost follow links intake asks notify to send a phone at once.",
        {"intake": (CompanyMessageEvent,)},
        key=BY_PHONE,
        # Codes are void after minutes and the events hold phones and tokens: a day, not for good.
        config=MappingProxyType({"retention.ms": str(24 * 3600 * 1000)}),
    ),
)
# One per department, `dept.<code>.v1`, for that department's own systems.
DEPARTMENT_TOPIC = Topic(
    "dept.<code>.v1",
    "For the department's own systems: its assignments (with the contact its clerks call), refusals of its "
    "actions, its deadlines. Kept as long as contacts are.",
    {"router": (AssignmentCreatedEvent, AssignmentWithdrawnEvent, ActionRejectedEvent), "sla": (SlaAlertEvent,)},
    config=PERSONAL_RETENTION,
)
# One per department, `dept.<code>.actions.v1`: only that department's principal (and router, echoing what the
# department did over HTTP, under the id it was applied with) may write it, so the topic names who acts.
DEPARTMENT_ACTIONS = Topic(
    "dept.<code>.actions.v1",
    "What the department decides on its assignments: router applies each as the topic's department's, whatever the "
    "event says.",
    {"departments": (DepartmentActionEvent,), "router": (DepartmentActionEvent,)},
    # One department's actions are few and in order: one partition is enough.
    partitions=1,
)
# Beside each platform topic, `<topic>.dlq`: the bytes a consumer could not read, with the reason in
# headers (any consumer), and the notifications notify gave up on (notification.failed.v1).
DEAD_LETTERS = "<topic>.dlq"


@dataclass(frozen=True)
class Consumer:
    """A consumer of a service: its group (`<service>.<name>`), the topics it reads, in batches or one by one."""

    service: str
    name: str
    topics: tuple[str, ...]
    does: str
    batch: bool = True
    # Nobody waits on this consumer's work within the second: the broker may hold its reads to fill larger batches.
    gathers: bool = False

    @property
    def group(self) -> str:
        """The consumer group with the service's default prefix (a deployment may set another)."""
        return f"{self.service}.{self.name}"


# sla's readers read both versions until every reader has moved and sla no longer writes v1 (docs/production.md);
# a report read on both is one id twice, which they drop like any copy.
SLA_TOPICS = (SLA_EVENTS, SLA_EVENTS_V2)

CONSUMERS = (
    Consumer(
        "intake",
        "lifecycle",
        (APPEALS_LIFECYCLE,),
        "keeps each appeal's status and timeline for the company",
        gathers=True,
    ),
    Consumer("intake", "clocks", SLA_TOPICS, "keeps each appeal's deadlines for the company", gathers=True),
    Consumer(
        "router",
        "submitted",
        (APPEALS_SUBMITTED, APPEALS_SUBMITTED_V2, APPEALS_CONTACTS),
        "routes each new appeal to its departments, with its contact; keeps and erases contacts",
    ),
    Consumer(
        "router",
        "action",
        (DEPARTMENT_ACTIONS.name, APPEALS_ACTIONS),
        "applies each department's actions as that department's; refusals go to its topic",
        batch=False,
    ),
    Consumer("router", "company", (APPEALS_COMPANY,), "applies the company's answers", batch=False),
    Consumer(
        "router", "clocks", SLA_TOPICS, "keeps each appeal's deadlines for departments and liaisons", gathers=True
    ),
    Consumer(
        "sla", "lifecycle", (APPEALS_LIFECYCLE,), "starts, pauses, resumes, stops and cancels the clocks", gathers=True
    ),
    Consumer(
        "notify",
        "event",
        (APPEALS_SUBMITTED, APPEALS_SUBMITTED_V2, APPEALS_CONTACTS, APPEALS_LIFECYCLE, *SLA_TOPICS),
        "plans what each event owes to whom, on which channel; keeps and erases contacts",
        gathers=True,
    ),
    Consumer("notify", "enterprises", (ENTERPRISES,), "keeps each company's liaison, to tell it of its appeals"),
    Consumer("notify", "messages", (COMPANY_MESSAGES,), "sends one-time codes and lost links by SMS, at once"),
    Consumer(
        "stats",
        "project",
        (APPEALS_SUBMITTED, APPEALS_SUBMITTED_V2, APPEALS_LIFECYCLE, *SLA_TOPICS, APPEALS_COMPANY, NOTIFY_DELIVERIES),
        "counts each event once into the figures",
        gathers=True,
    ),
)


def consumer(service: str, name: str) -> Consumer:
    """The contract's consumer `name` of `service`."""
    for entry in CONSUMERS:
        if entry.service == service and entry.name == name:
            return entry
    raise KeyError(f"no consumer {name!r} of {service!r} in the contract")


def consumers_of(service: str) -> tuple[Consumer, ...]:
    """The consumers of one service."""
    return tuple(entry for entry in CONSUMERS if entry.service == service)


def department_topic(code: str) -> str:
    """The topic a department's own systems consume."""
    return f"dept.{code}.v1"


def department_actions_topic(code: str) -> str:
    """The topic only a department's own systems (and router, for its HTTP actions) write its actions to."""
    return f"dept.{code}.actions.v1"


_DEPARTMENT_NAME = re.compile(r"^dept\.(?P<code>[a-z][a-z0-9-]*)\.(?P<actions>actions\.)?v1$")


def department_of(name: str) -> str | None:
    """The department whose topic (`dept.<code>.v1` or `dept.<code>.actions.v1`) `name` is, or None."""
    matched = _DEPARTMENT_NAME.match(name)
    return matched["code"] if matched else None


def topics_of(consumer: Consumer, department_codes: Iterable[str]) -> list[str]:
    """The topics a consumer reads, each department's topic of a per-department entry included."""
    out: list[str] = []
    for name in consumer.topics:
        if name == DEPARTMENT_ACTIONS.name:
            out += [department_actions_topic(code) for code in department_codes]
        elif name == DEPARTMENT_TOPIC.name:
            out += [department_topic(code) for code in department_codes]
        else:
            out.append(name)
    return out


def dead_letter_topic(topic: str) -> str:
    """Where a consumer of `topic` puts what it cannot parse or validate."""
    return f"{topic}.dlq"


_BY_NAME = {topic.name: topic for topic in TOPICS}


def topic(name: str) -> Topic | None:
    """The contract's entry for a topic name: a platform topic, a department's topic or actions topic, or None."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name in (DEPARTMENT_TOPIC.name, DEPARTMENT_ACTIONS.name):
        return DEPARTMENT_TOPIC if name == DEPARTMENT_TOPIC.name else DEPARTMENT_ACTIONS
    matched = _DEPARTMENT_NAME.match(name)
    if matched:
        return DEPARTMENT_ACTIONS if matched["actions"] else DEPARTMENT_TOPIC
    return None


def all_topics(department_codes: Iterable[str]) -> list[str]:
    """Every topic the platform uses: its own, two per department, and the dead-letter topics of those read."""
    codes = list(department_codes)
    actions = [department_actions_topic(c) for c in codes]
    return [
        *_BY_NAME,
        *(department_topic(c) for c in codes),
        *actions,
        *(dead_letter_topic(t) for t in [*_BY_NAME, *actions]),
    ]


def partitions_for(name: str, default: int) -> int:
    """The partitions topic `name` is created with: its entry's own count, else `default`."""
    entry = topic(name.removesuffix(".dlq"))
    return entry.partitions if entry is not None and entry.partitions else default


def topic_config(name: str) -> Mapping[str, str]:
    """The settings a topic is created with: its entry's. A dead-letter topic holds records as they came, personal
    data and all, and cannot erase one: it keeps them as long as contacts are kept, or as its topic keeps its own
    when that is shorter, never compacted."""
    entry = topic(name)
    if entry is not None:
        return entry.config
    source = topic(name.removesuffix(".dlq"))
    own = int(source.config.get("retention.ms", "-1")) if source is not None else -1
    personal = int(PERSONAL_RETENTION["retention.ms"])
    return MappingProxyType({"retention.ms": str(own if 0 <= own < personal else personal)})


@cache
def payload_of(envelopes: tuple[type[Envelope[Any]], ...], label: str) -> Any:
    """What a record may hold: one envelope, or a union of them named after `label` (a topic) in documents."""
    if len(envelopes) == 1:
        return envelopes[0]
    name = "".join(part[:1].upper() + part[1:] for part in re.split(r"[.\-]", label) if part) + "Events"
    members: Any = Union[envelopes]  # noqa: UP007 (built from a runtime tuple)
    return create_model(
        name, __base__=RootModel[members], __doc__="One of: " + ", ".join(e.__name__ for e in envelopes) + "."
    )


def _reader(entry: Topic) -> TypeAdapter[Any]:
    envelopes = entry.envelopes
    if len(envelopes) == 1:
        return TypeAdapter(envelopes[0])
    members: Any = Union[envelopes]  # noqa: UP007 (built from a runtime tuple)
    by_type: Any = Annotated[members, Field(discriminator="type")]
    return TypeAdapter(by_type)


_READERS = {entry.name: _reader(entry) for entry in (*TOPICS, DEPARTMENT_TOPIC, DEPARTMENT_ACTIONS)}
# Read from no topic in particular (an event kept in a database): the platform topic's envelope for its type.
_ENVELOPE_OF_TYPE = {
    t: envelope
    for entry in (DEPARTMENT_TOPIC, DEPARTMENT_ACTIONS, *TOPICS)
    for envelope in entry.envelopes
    for t in envelope.TYPES
}


def parse_event(body: bytes, topic_name: str | None = None) -> CloudEvent[Any]:
    """Parse and validate an event (read from `topic_name`) into its envelope; raises `ValueError` naming what is wrong.

    A known type on a topic that does not carry it is refused too: it would pass validation
    and then fail its handler forever.
    """
    entry = topic(topic_name) if topic_name is not None else None
    if entry is None:
        raw = RawEvent.model_validate_json(body)
        envelope = _ENVELOPE_OF_TYPE.get(EventType(raw.type)) if raw.type in _ENVELOPE_OF_TYPE else None
        if envelope is None:
            raise ValueError(f"unknown event type {raw.type!r}")
        return envelope.model_validate(raw.model_dump() | {"data": raw.data})
    try:
        event: CloudEvent[Any] = _READERS[entry.name].validate_json(body)
        return event
    except ValidationError as exc:
        kind = exc.errors()[0]["type"] if exc.error_count() else ""
        if kind in ("union_tag_invalid", "literal_error"):
            raw = RawEvent.model_validate_json(body)
            if raw.type not in DATA_MODELS:
                raise ValueError(f"unknown event type {raw.type!r}") from None
            if raw.type not in entry.carries:
                raise ValueError(f"event type {raw.type!r} does not travel on {topic_name}") from None
        raise
