"""SLA's periodic work: fire due thresholds, finish stale outboxes, recount running clocks."""

from libs.app import Runtime
from services.sla import service


def start(runtime: Runtime) -> None:
    """Schedule the sla jobs on the runtime."""
    settings, metrics = runtime.settings, runtime.metrics

    async def fire() -> None:
        # Keep going while whole batches come back, so a backlog drains without waiting a tick.
        while True:
            fired = await service.fire_due(runtime.db, runtime.broker, runtime.book, runtime.clock.now(),
                                           settings.fire_batch)
            for f in fired:
                metrics.fire_lag.observe(max(f.lag, 0.0))
                if f.level == 100:
                    metrics.breaches.labels(f.department, f.clock).inc()
                else:
                    metrics.warnings.labels(f.department, f.clock, str(f.level)).inc()
            if len(fired) < settings.fire_batch:
                return

    async def sweep() -> None:
        now = runtime.clock.now()
        await service.release_expired_claims(runtime.db, now)
        await service.flush_stale_outboxes(runtime.db, runtime.broker, now)

    async def recount() -> None:
        for clock, count in (await service.running_counts(runtime.db)).items():
            metrics.running.labels(clock).set(count)

    runtime.every(settings.tick_seconds, fire, "sla-fire")
    runtime.every(2.0, sweep, "sla-outbox-sweep")
    runtime.every(settings.gauge_seconds, recount, "sla-recount", run_first=True)
