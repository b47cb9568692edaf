"""Intake's consumers: the status read model follows the lifecycle and the SLA clocks."""

from libs.app import Runtime
from libs.events import CloudEvent
from libs.kafka import subscribe
from libs.topics import APPEALS_LIFECYCLE, SLA_EVENTS
from services.intake import service


def register(runtime: Runtime) -> None:
    """Subscribe intake's handlers on the runtime's broker."""

    async def on_lifecycle(event: CloudEvent) -> None:
        """Keep each appeal's status and timeline for companies and channels."""
        await service.apply_lifecycle(runtime.db, event)

    async def on_clocks(event: CloudEvent) -> None:
        """Keep each appeal's deadlines, so the company sees when to expect an answer."""
        await service.apply_clock(runtime.db, event)

    subscribe(runtime.broker, runtime.settings, [APPEALS_LIFECYCLE], on_lifecycle)
    subscribe(runtime.broker, runtime.settings, [SLA_EVENTS], on_clocks)
