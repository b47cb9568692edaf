"""Intake's consumers: the status read model follows the lifecycle and the SLA clocks."""

from libs.app import Runtime
from libs.kafka import Delivered, subscribe_batch
from libs.topics import APPEALS_LIFECYCLE, SLA_EVENTS
from services.intake import service


def register(runtime: Runtime) -> None:
    """Subscribe intake's handlers on the runtime's broker."""

    async def on_lifecycle(batch: list[Delivered]) -> None:
        """Keep each appeal's status and timeline for companies and channels."""
        await service.apply_lifecycle(runtime.db, [d.event for d in batch])

    async def on_clocks(batch: list[Delivered]) -> None:
        """Keep each appeal's deadlines, so the company sees when to expect an answer."""
        await service.apply_clocks(runtime.db, [d.event for d in batch])

    # In batches: at load, one bulk write keeps up to a hundred events.
    subscribe_batch(runtime.broker, runtime.settings, [APPEALS_LIFECYCLE], on_lifecycle)
    subscribe_batch(runtime.broker, runtime.settings, [SLA_EVENTS], on_clocks)
