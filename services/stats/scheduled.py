"""Stats' periodic work: reread the all-time counts behind the business metrics."""

from services.stats import service
from services.stats.runtime import StatsRuntime


def start(runtime: StatsRuntime) -> None:
    """Schedule the stats jobs on the runtime."""

    async def refresh() -> None:
        runtime.metrics.update(await service.totals(runtime.db))

    runtime.every(runtime.settings.metrics_refresh_seconds, refresh, "stats-metrics", run_first=True)
