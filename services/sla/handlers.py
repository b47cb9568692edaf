"""SLA's consumer: the lifecycle drives the clocks."""

from libs.app import Runtime
from libs.events import CloudEvent
from libs.kafka import subscribe
from libs.topics import APPEALS_LIFECYCLE
from services.sla import service


def register(runtime: Runtime) -> None:
    """Subscribe sla's handlers on the runtime's broker."""

    async def on_lifecycle(event: CloudEvent) -> None:
        """Start, pause, resume, stop or cancel the appeal's clocks."""
        await service.apply_lifecycle(runtime.db, runtime.broker, runtime.book, event, runtime.clock.now())

    subscribe(runtime.broker, runtime.settings, [APPEALS_LIFECYCLE], on_lifecycle)
