"""SLA's consumer: the lifecycle drives the clocks."""

from libs.contract import consumer
from libs.envelopes import AppealLifecycleEvent
from libs.kafka.consuming import subscribe
from services.sla import service
from services.sla.runtime import SlaRuntime


def register(runtime: SlaRuntime) -> None:
    """Subscribe sla's handlers on the runtime's broker."""

    async def on_lifecycle(events: list[AppealLifecycleEvent]) -> None:
        """Start, pause, resume, stop or cancel the appeals' clocks."""
        await service.apply_lifecycle(runtime.db, runtime.broker, runtime.book, events, runtime.clock.now())

    subscribe(runtime.broker, runtime.settings, consumer("sla", "lifecycle"), on_lifecycle)
