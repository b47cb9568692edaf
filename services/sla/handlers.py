"""SLA's consumer: the lifecycle drives the clocks."""

from libs.app import Runtime
from libs.kafka import Delivered, subscribe_batch
from libs.topics import APPEALS_LIFECYCLE
from services.sla import service


def register(runtime: Runtime) -> None:
    """Subscribe sla's handlers on the runtime's broker."""

    async def on_lifecycle(batch: list[Delivered]) -> None:
        """Start, pause, resume, stop or cancel the appeals' clocks."""
        await service.apply_lifecycle(runtime.db, runtime.broker, runtime.book, [d.event for d in batch],
                                      runtime.clock.now())

    # In batches: at load, a few bulk writes apply a hundred lifecycle events.
    subscribe_batch(runtime.broker, runtime.settings, [APPEALS_LIFECYCLE], on_lifecycle)
