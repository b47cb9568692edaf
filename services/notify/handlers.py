"""Notify's consumer: every event that someone must hear about."""

from libs.app import Runtime
from libs.events import CloudEvent
from libs.kafka import subscribe
from libs.topics import APPEALS_LIFECYCLE, APPEALS_SUBMITTED, SLA_EVENTS
from services.notify import service


def register(runtime: Runtime) -> None:
    """Subscribe notify's handlers on the runtime's broker."""

    async def on_event(event: CloudEvent) -> None:
        """Record the notifications an appeal, lifecycle or SLA event owes; the dispatcher sends them."""
        await service.plan_event(runtime.db, runtime.book, event, runtime.clock.now(), runtime.settings.status_url,
                                 runtime.memory)

    subscribe(runtime.broker, runtime.settings, [APPEALS_SUBMITTED, APPEALS_LIFECYCLE, SLA_EVENTS], on_event)
