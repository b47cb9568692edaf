"""Router's consumers: new appeals, department actions over Kafka, the company's answers, the SLA clocks."""

import logging

from libs.contract import consumer, department_topic
from libs.events import (
    ActionRejected,
    AppealSubmittedEvent,
    CompanyFeedbackEvent,
    CompanyInfoProvidedEvent,
    DepartmentActionEvent,
    SlaClockEvent,
    SlaReportedEvent,
    unpacked,
)
from libs.kafka import subscribe
from services.router import lifecycle, service
from services.router.runtime import RouterRuntime

log = logging.getLogger(__name__)


def register(runtime: RouterRuntime) -> None:
    """Subscribe router's handlers on the runtime's broker."""

    async def on_submitted(events: list[AppealSubmittedEvent]) -> None:
        """Route each new appeal to its lead department and co-handlers."""
        await service.admit(runtime.db, runtime.broker, runtime.book, events, runtime.clock.now())

    async def on_action(event: DepartmentActionEvent) -> None:
        """Apply a department's action published on Kafka; refusals go back to its topic."""
        action = event.data
        now = runtime.clock.now()
        try:
            await service.transition(
                runtime.db,
                runtime.broker,
                action.appeal_id,
                lambda d: lifecycle.decide_action(d, action, runtime.book, now),
                now,
                event_id=event.id,
            )
        except lifecycle.ActionError as exc:
            log.info(
                "refused a department action",
                extra={"appeal_id": action.appeal_id, "status": exc.status, "detail": exc.detail},
            )
            if runtime.book.city.department(action.department) is not None:
                await service.publish_rejection(
                    runtime.broker,
                    department_topic(action.department),
                    action.appeal_id,
                    ActionRejected(
                        appeal_id=action.appeal_id,
                        department=action.department,
                        action=action.action.value,
                        status=exc.status,
                        detail=exc.detail,
                    ),
                )

    async def on_company(event: CompanyInfoProvidedEvent | CompanyFeedbackEvent) -> None:
        """The company provided information or gave feedback on a resolution."""
        data = event.data
        if isinstance(event, CompanyInfoProvidedEvent):
            decide = lifecycle.decide_info_provided
        else:

            def decide(doc):
                return lifecycle.decide_feedback(doc, data.resolved, data.satisfaction, data.comment)

        try:
            await service.transition(
                runtime.db, runtime.broker, data.appeal_id, decide, runtime.clock.now(), event_id=event.id
            )
        except lifecycle.ActionError as exc:
            log.info("ignored a company event", extra={"appeal_id": data.appeal_id, "detail": exc.detail})

    async def on_clocks(events: list[SlaClockEvent | SlaReportedEvent]) -> None:
        """Keep each appeal's deadlines, for worklists and the company's history."""
        await service.apply_clocks(runtime.db, unpacked(events))

    subscribe(runtime.broker, runtime.settings, consumer("router", "submitted"), on_submitted)
    subscribe(runtime.broker, runtime.settings, consumer("router", "clocks"), on_clocks)
    subscribe(runtime.broker, runtime.settings, consumer("router", "action"), on_action)
    subscribe(runtime.broker, runtime.settings, consumer("router", "company"), on_company)
