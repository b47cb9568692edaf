"""Router's consumers: new appeals, department actions over Kafka, the company's answers, the SLA clocks.

Each handler is a function of the runtime and what was read, so a test can call it directly;
`register` subscribes them.
"""

import logging
from datetime import timedelta

from libs.contract import consumer, department_of, department_topic
from libs.envelopes import (
    AppealContactErasedEvent,
    AppealContactEvent,
    AppealFiledEvent,
    AppealSubmittedEvent,
    CompanyFeedbackEvent,
    CompanyInfoProvidedEvent,
    DepartmentActionEvent,
    SlaClockEvent,
    SlaReportedEvent,
    unpacked,
)
from libs.events import ActionRejected
from libs.kafka.consuming import Contention, subscribe
from services.router import contacts as contact_store
from services.router import lifecycle, service, transitions
from services.router.runtime import RouterRuntime
from services.router.transitions import ActionError

log = logging.getLogger(__name__)


Submissions = AppealSubmittedEvent | AppealFiledEvent | AppealContactEvent | AppealContactErasedEvent
# Intake publishes an appeal's contact before its submission, on another topic: a read can see the submission
# first, and its routing waits for the contact. One still missing this long after submission is a fault: the
# record then fails like any other, and goes to the .dlq after its attempts.
CONTACT_WAIT = timedelta(minutes=10)


async def on_submitted(runtime: RouterRuntime, events: list[Submissions]) -> None:
    """Keep and erase contacts; route each new appeal to its lead department and co-handlers, with its contact."""
    contacts = [e for e in events if isinstance(e, AppealContactEvent)]
    erased = [e.subject for e in events if isinstance(e, AppealContactErasedEvent)]
    filed = [e for e in events if isinstance(e, AppealSubmittedEvent | AppealFiledEvent)]
    await contact_store.keep_contacts(runtime.db, contacts)
    await contact_store.erase_contacts(runtime.db, erased)
    if not filed:
        return
    now = runtime.clock.now()
    known = await contact_store.contacts_for(runtime.db, contacts, [e.subject for e in filed])
    missing = [e for e in filed if isinstance(e, AppealFiledEvent) and e.subject not in known]
    if any(now - e.data.submitted_at >= CONTACT_WAIT for e in missing):
        raise LookupError(f"no contact came for {len(missing)} appeals within {CONTACT_WAIT}")
    if missing:
        raise Contention(f"{len(missing)} appeals' contacts are not here yet")
    await service.admit(runtime.db, runtime.broker, runtime.book, filed, now, known)


async def on_action(runtime: RouterRuntime, event: DepartmentActionEvent) -> None:
    """Apply a department's action read on its actions topic, as that department's; refusals go to its topic."""
    if event.source == transitions.SOURCE:
        return  # an action taken over HTTP, published once it was applied: nothing to do, not even a read
    topic = event.position[0] if event.position else ""
    action = event.data
    # Refusals go to the department that sent it: the topic's, whatever the event says.
    sender = department_of(topic) or action.department
    now = runtime.clock.now()
    try:
        action = lifecycle.acting_department(topic, action)
        clocks = await service.clocks_for(runtime.db, action)
        await service.transition(
            runtime.db,
            runtime.broker,
            action.appeal_id,
            lambda d: lifecycle.decide_action(d, action, runtime.book, now, clocks=clocks),
            now,
            event_id=event.id,
        )
    except ActionError as exc:
        log.info(
            "refused a department action",
            extra={"appeal_id": action.appeal_id, "status": exc.status, "detail": exc.detail},
        )
        if runtime.book.city.department(sender) is not None:
            await service.publish_rejection(
                runtime.broker,
                department_topic(sender),
                action.appeal_id,
                ActionRejected(
                    appeal_id=action.appeal_id,
                    department=sender,
                    action=action.action.value,
                    status=exc.status,
                    detail=exc.detail,
                ),
            )


async def on_company(runtime: RouterRuntime, event: CompanyInfoProvidedEvent | CompanyFeedbackEvent) -> None:
    """The company provided information or gave feedback on a resolution."""
    data = event.data
    if isinstance(event, CompanyInfoProvidedEvent):
        decide = lifecycle.decide_info_provided
    else:

        def decide(doc):
            return lifecycle.decide_feedback(doc, data.resolved, data.satisfaction, data.comment, runtime.book, now)

    now = runtime.clock.now()
    try:
        await service.transition(runtime.db, runtime.broker, data.appeal_id, decide, now, event_id=event.id)
    except ActionError as exc:
        log.info("ignored a company event", extra={"appeal_id": data.appeal_id, "detail": exc.detail})


async def on_clocks(runtime: RouterRuntime, events: list[SlaClockEvent | SlaReportedEvent]) -> None:
    """Keep each appeal's deadlines, for worklists and the company's history."""
    await service.apply_clocks(runtime.db, unpacked(events))


def register(runtime: RouterRuntime) -> None:
    """Subscribe router's handlers on the runtime's broker; actions come on every department's actions topic."""
    codes = [d.code for d in runtime.book.city.departments]

    async def submitted(events: list[Submissions]) -> None:
        await on_submitted(runtime, events)

    async def clocks(events: list[SlaClockEvent | SlaReportedEvent]) -> None:
        await on_clocks(runtime, events)

    async def action(event: DepartmentActionEvent) -> None:
        await on_action(runtime, event)

    async def company(event: CompanyInfoProvidedEvent | CompanyFeedbackEvent) -> None:
        await on_company(runtime, event)

    for name, handler, about in (
        ("submitted", submitted, on_submitted),
        ("clocks", clocks, on_clocks),
        ("action", action, on_action),
        ("company", company, on_company),
    ):
        handler.__name__, handler.__doc__ = about.__name__, about.__doc__
        subscribe(runtime.broker, runtime.settings, consumer("router", name), handler, department_codes=codes)
