"""Notify's consumer: every event that someone must hear about."""

from libs.app import Runtime
from libs.kafka import Delivered, subscribe_batch
from libs.topics import APPEALS_LIFECYCLE, APPEALS_SUBMITTED, SLA_EVENTS
from services.notify import service


def register(runtime: Runtime) -> None:
    """Subscribe notify's handlers on the runtime's broker."""

    async def on_event(batch: list[Delivered]) -> None:
        """Record the notifications appeal, lifecycle and SLA events owe; the dispatcher sends them."""
        await service.plan_events(runtime.db, runtime.book, [d.event for d in batch], runtime.clock.now(),
                                  runtime.settings.status_url, runtime.memory)

    # In batches: at load, one insert records what a hundred events owe.
    subscribe_batch(runtime.broker, runtime.settings, [APPEALS_SUBMITTED, APPEALS_LIFECYCLE, SLA_EVENTS], on_event)
