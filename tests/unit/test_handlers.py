"""Every consumer's handler on FastStream's in-memory broker: typed events in, bad records to the `.dlq`.

The service functions behind the handlers are replaced by recorders here; the same handlers
run against the real broker and databases in tests/integration and tests/e2e.
"""

from collections import defaultdict
from typing import Any

import pytest
from faststream import Context
from faststream.kafka import TestKafkaBroker
from faststream.kafka.message import KafkaMessage

from devstack.apidocs import build_app
from libs.contract import CONSUMERS, consumers_of, dead_letter_topic, topics_of
from libs.envelopes import unpacked
from libs.events import (
    AppealContact,
    AppealContactErased,
    AppealFiled,
    CompanyFeedback,
    CompanyInfoProvided,
    CompanyMessage,
    DepartmentAction,
    EnterpriseChanged,
    NotificationOutcome,
)
from libs.kafka.publishing import encode, make_event
from libs.kinds import ActionKind, AppealStatus, EventType
from services.intake import read_model as intake_read_model
from services.notify import handlers as notify
from services.router import contacts as router_contacts
from services.router import service as router
from services.sla import service as sla
from services.stats import service as stats
from tests.helpers import packed
from tests.unit.test_stats import APPEAL, T0, changed, clock_event, submitted

ROUTED = changed(EventType.appeal_routed, AppealStatus.routed, 1, T0)
SUBMITTED = submitted()
OTHER = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P6"
FILED = make_event(
    "appeals/intake",
    EventType.appeal_submitted_v2,
    OTHER,
    AppealFiled(
        **{
            **SUBMITTED.data.model_dump(include=set(AppealFiled.model_fields)),
            "appeal_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P6",
        }
    ),
)
CONTACT = make_event(
    "appeals/intake",
    EventType.appeal_contact,
    FILED.subject,
    AppealContact(appeal_id=FILED.subject, contact=SUBMITTED.data.contact, follow_url=None, version=0),
)
ERASED = make_event(
    "appeals/intake",
    EventType.appeal_contact_erased,
    APPEAL,
    AppealContactErased(appeal_id=APPEAL, reason="request"),
)
ACTION = make_event(
    "departments/nanshan-finance",
    EventType.department_action,
    APPEAL,
    DepartmentAction(appeal_id=APPEAL, department="nanshan-finance", action=ActionKind.accept),
)
INFO = make_event(
    "appeals/intake",
    EventType.company_info_provided,
    APPEAL,
    CompanyInfoProvided(appeal_id=APPEAL, information="Our tax number is 123."),
)
FEEDBACK = make_event(
    "appeals/intake",
    EventType.company_feedback,
    APPEAL,
    CompanyFeedback(appeal_id=APPEAL, resolved=True, satisfaction=5),
)
DELIVERED = make_event(
    "appeals/notify",
    EventType.notification_delivered,
    APPEAL,
    NotificationOutcome(
        appeal_id=APPEAL,
        notification_id="x:company:sms",
        event_id="x",
        event_type="appeal.routed.v1",
        recipient="company",
        audience="company",
        channel="sms",
        attempts=1,
    ),
)
COMPANY = make_event(
    "appeals/router",
    EventType.enterprise_updated,
    "91440300MA5FXT4K8N",
    EnterpriseChanged(uscc="91440300MA5FXT4K8N", name="Lanhai", liaison="zhou-min", version=2),
)
CODE = make_event(
    "appeals/intake",
    EventType.company_code_issued,
    "a1b2c3",
    CompanyMessage(phone="13800138000", code="042917", expires_at=T0),
)
# One valid event of each topic a consumer reads.
SAMPLES = {
    "appeals.submitted.v1": [SUBMITTED],
    "appeals.submitted.v2": [FILED],
    "appeals.contacts.v1": [CONTACT, ERASED],
    "appeals.lifecycle.v1": [ROUTED],
    "sla.events.v1": [clock_event(EventType.sla_started, "running", T0)],
    "sla.events.v2": [
        packed(clock_event(EventType.sla_started, "running", T0), clock_event(EventType.sla_met, "met", T0, "response"))
    ],
    "appeals.actions.v1": [ACTION],
    "dept.nanshan-finance.actions.v1": [ACTION],
    "appeals.company.v1": [INFO, FEEDBACK],
    "notify.deliveries.v1": [DELIVERED],
    "enterprises.v1": [COMPANY],
    "company.messages.v1": [CODE],
}


def recorder(calls: list[tuple[Any, ...]]):
    async def record(*args: Any, **kwargs: Any) -> None:
        calls.append(args + tuple(kwargs.values()))

    return record


@pytest.fixture
def calls(monkeypatch) -> dict[str, list[tuple[Any, ...]]]:
    """What reached each service function the handlers call, by consumer group."""
    seen: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    monkeypatch.setattr(intake_read_model, "apply_lifecycle", recorder(seen["intake.lifecycle"]))
    monkeypatch.setattr(intake_read_model, "apply_clocks", recorder(seen["intake.clocks"]))
    monkeypatch.setattr(router, "admit", recorder(seen["router.submitted"]))
    monkeypatch.setattr(router_contacts, "keep_contacts", recorder(seen["router.submitted"]))
    monkeypatch.setattr(router_contacts, "erase_contacts", recorder(seen["router.erased"]))

    async def contacts_for(_db: Any, _events: Any, appeal_ids: list[str]) -> dict[str, Any]:
        return {appeal_id: CONTACT.data.contact for appeal_id in appeal_ids}  # as router's store would have them

    monkeypatch.setattr(router_contacts, "contacts_for", contacts_for)
    monkeypatch.setattr(router, "transition", recorder(seen["router.transition"]))
    monkeypatch.setattr(router, "apply_clocks", recorder(seen["router.clocks"]))
    monkeypatch.setattr(sla, "apply_lifecycle", recorder(seen["sla.lifecycle"]))
    monkeypatch.setattr(notify, "plan_events", recorder(seen["notify.event"]))
    monkeypatch.setattr(notify, "remember_companies", recorder(seen["notify.enterprises"]))
    monkeypatch.setattr(notify, "send_messages", recorder(seen["notify.messages"]))
    monkeypatch.setattr(stats, "project", recorder(seen["stats.project"]))
    return seen


def events_in(call: tuple[Any, ...]) -> list[Any]:
    """The events a service function was given (its one list argument; stats' hold them with their positions)."""
    return [getattr(item, "event", item) for item in next(arg for arg in call if isinstance(arg, list))]


@pytest.mark.parametrize("service", sorted({c.service for c in CONSUMERS}))
async def test_each_handler_gets_its_topics_events_typed_and_sends_bad_records_to_the_dlq(service, calls):
    app = build_app(service)
    runtime = app.state.runtime
    runtime._db = "the database"
    runtime.senders = "the HTTP and SMTP clients"  # notify opens its own when it starts
    dead: dict[str, list[bytes]] = defaultdict(list)
    # A per-department topic stands here for one department's: the one the sample action came on.
    topics = {t for c in consumers_of(service) for t in topics_of(c, ["nanshan-finance"])}

    @runtime.broker.subscriber(*(dead_letter_topic(t) for t in topics))
    async def keep(message: KafkaMessage = Context("message")) -> None:
        dead[message.raw_message.topic.removesuffix(".dlq")].append(message.raw_message.value)

    async with TestKafkaBroker(runtime.broker) as broker:
        for topic in sorted(topics):
            for event in SAMPLES[topic]:
                await broker.publish(encode(event), topic=topic, key=event.subject.encode())
            await broker.publish(b"{not an event", topic=topic)
            # A known event on a topic that does not carry it is refused too.
            wrong = SAMPLES["notify.deliveries.v1" if topic != "notify.deliveries.v1" else "appeals.actions.v1"][0]
            await broker.publish(encode(wrong), topic=topic)

    assert {t: len(bodies) for t, bodies in dead.items()} == dict.fromkeys(topics, 2)
    for entry in consumers_of(service):
        if entry.batch:
            received = [e for call in calls[entry.group] for e in events_in(call) if e != []]
            # Stats counts sla.reported.v2 as it is; the others take the sla.*.v1 events it packs.
            sent = [e for t in topics_of(entry, ["nanshan-finance"]) for e in SAMPLES[t]]
            if entry.group == "router.submitted":
                # Erasures reach router's store by the appeals they name.
                erased = [
                    appeal for call in calls["router.erased"] for ids in call if isinstance(ids, list) for appeal in ids
                ]
                assert erased == [APPEAL]
                sent = [e for e in sent if e is not ERASED]
            assert sorted(e.id for e in unpacked(received)) == sorted(e.id for e in unpacked(sent))
            assert all(e.position is not None and e.position[0] in entry.topics for e in received)
            envelopes = {type(e).__name__ for e in received}
            assert envelopes <= {env.__name__ for t in entry.topics for env in _carried(t)}
        else:
            # Router's one-by-one consumers apply each event as a transition of its appeal.
            assert [call[2] for call in calls["router.transition"]].count(APPEAL) == len(
                [
                    e
                    for c in consumers_of("router")
                    if not c.batch
                    for t in topics_of(c, ["nanshan-finance"])
                    for e in SAMPLES[t]
                ]
            )


def _carried(topic: str):
    from libs.contract import topic as contract_topic

    return contract_topic(topic).envelopes
