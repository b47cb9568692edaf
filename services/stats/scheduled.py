"""Stats' periodic work: reread the all-time counts behind the business metrics, and this month's scorecard."""

from services.stats import flows, service
from services.stats.runtime import StatsRuntime


def start(runtime: StatsRuntime) -> None:
    """Schedule the stats jobs on the runtime."""

    async def refresh() -> None:
        runtime.metrics.update(await service.totals(runtime.db))

    async def score() -> None:
        runtime.scorecard_metrics.update(await flows.scorecard(runtime, flows.this_month(runtime)))

    runtime.every(runtime.settings.metrics_refresh_seconds, refresh, "stats-metrics", run_first=True)
    runtime.every(runtime.settings.scorecard_refresh_seconds, score, "stats-scorecard", run_first=True)
