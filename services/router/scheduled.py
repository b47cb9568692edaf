"""Router's periodic work: finish stale outboxes, close resolutions the company never answered, carry out the
return visits' plans (the survey link when due, unreached when nobody answered in time)."""

import contextlib

from services.router import lifecycle, service, visits
from services.router.runtime import RouterRuntime
from services.router.transitions import ActionError


def start(runtime: RouterRuntime) -> None:
    """Schedule the router's jobs on the runtime."""
    settings = runtime.settings

    async def sweep_outboxes() -> None:
        await service.flush_stale_outboxes(runtime.db, runtime.broker, runtime.clock.now())

    async def auto_close() -> None:
        now = runtime.clock.now()
        for appeal_id in await service.due_for_auto_close(runtime.db, now, settings.auto_close_days):
            # ActionError: the company answered, or another replica closed it meanwhile.
            with contextlib.suppress(ActionError):
                await service.transition(
                    runtime.db,
                    runtime.broker,
                    appeal_id,
                    lambda d: lifecycle.decide_auto_close(d, settings.auto_close_days),
                    now,
                    event_id=f"auto-close:{appeal_id}",
                )

    async def return_visits() -> None:
        now = runtime.clock.now()
        for due in await service.due_visits(runtime.db, now):
            appeal_id, visit = due["_id"], due["visit"]
            # The event id names the step, so replicas sweeping together take it once.
            with contextlib.suppress(ActionError):
                await service.transition(
                    runtime.db,
                    runtime.broker,
                    appeal_id,
                    lambda d: visits.on_time(d, now),
                    now,
                    event_id=f"visit:{appeal_id}:{visit.get('round')}:{visit.get('state')}",
                )

    runtime.every(settings.sweep_interval_seconds, sweep_outboxes, "router-outbox-sweep")
    runtime.every(settings.sweep_interval_seconds, return_visits, "router-return-visits")
    runtime.every(settings.sweep_interval_seconds, auto_close, "router-auto-close")
