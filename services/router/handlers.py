"""Router's consumers: new appeals, department actions over Kafka, the company's answers."""

import logging

from libs.app import Runtime
from libs.events import ActionRejected, CloudEvent, EventType
from libs.kafka import Delivered, subscribe, subscribe_batch
from libs.topics import APPEALS_ACTIONS, APPEALS_COMPANY, APPEALS_SUBMITTED, department_topic
from services.router import lifecycle, service

log = logging.getLogger(__name__)


def register(runtime: Runtime) -> None:
    """Subscribe router's handlers on the runtime's broker."""

    async def on_submitted(batch: list[Delivered]) -> None:
        """Route each new appeal to its lead department and co-handlers."""
        await service.admit(runtime.db, runtime.broker, runtime.book, [d.event for d in batch], runtime.clock.now())

    async def on_action(event: CloudEvent) -> None:
        """Apply a department's action published on Kafka; refusals go back to its topic."""
        action = event.data
        now = runtime.clock.now()
        try:
            await service.transition(runtime.db, runtime.broker, action.appeal_id,
                                     lambda d: lifecycle.decide_action(d, action, runtime.book, now), now,
                                     event_id=event.id)
        except lifecycle.ActionError as exc:
            log.info("refused a department action", extra={"appeal_id": action.appeal_id,
                                                           "status": exc.status, "detail": exc.detail})
            if runtime.book.city.department(action.department) is not None:
                await service.publish_rejection(
                    runtime.broker, department_topic(action.department), action.appeal_id,
                    ActionRejected(appeal_id=action.appeal_id, department=action.department,
                                   action=action.action.value, status=exc.status, detail=exc.detail))

    async def on_company(event: CloudEvent) -> None:
        """The company provided information or gave feedback on a resolution."""
        data = event.data
        if event.type == EventType.company_info_provided:
            decide = lifecycle.decide_info_provided
        else:
            def decide(doc):
                return lifecycle.decide_feedback(doc, data.resolved, data.satisfaction, data.comment)
        try:
            await service.transition(runtime.db, runtime.broker, data.appeal_id, decide, runtime.clock.now(),
                                     event_id=event.id)
        except lifecycle.ActionError as exc:
            log.info("ignored a company event", extra={"appeal_id": data.appeal_id, "detail": exc.detail})

    # In batches: at load, one insert and one write route up to a hundred appeals.
    subscribe_batch(runtime.broker, runtime.settings, [APPEALS_SUBMITTED], on_submitted)
    subscribe(runtime.broker, runtime.settings, [APPEALS_ACTIONS], on_action)
    subscribe(runtime.broker, runtime.settings, [APPEALS_COMPANY], on_company)
