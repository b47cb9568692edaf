"""What stats' views and jobs read from the store and hand to the pure rules: department figures, the scorecard."""

import asyncio
from datetime import datetime
from typing import Any

from services.stats import assessment, report, service
from services.stats.buckets import parts
from services.stats.runtime import StatsRuntime


async def counts(runtime: StatsRuntime, frm: datetime, to: datetime) -> dict[str, int]:
    """The summed hour buckets of [frm, to)."""
    return await service.window(runtime.db, "h:", frm, to, runtime.tz)


async def departments(
    runtime: StatsRuntime, frm: datetime, to: datetime, counted: dict[str, int], latencies: bool = True
) -> list[dict[str, Any]]:
    """The department figures of [frm, to) from its summed buckets (`counted`)."""
    overdue, totals = await asyncio.gather(
        service.overdue_clocks(runtime.db, runtime.clock.now(), frm, to), service.totals(runtime.db)
    )
    sketches = [await service.window(runtime.db, "l:", frm, to, runtime.tz)] if latencies else []
    open_now = {parts(name)[1]: n for name, n in totals.items() if name.startswith("open|")}
    return report.department_rates(
        runtime.city, counted, sketches[0] if sketches else {}, overdue, open_now, runtime.settings.min_volume
    )


def this_month(runtime: StatsRuntime) -> str:
    """The month it is now in the city."""
    return assessment.month_of(runtime.clock.now(), runtime.tz)


async def scorecard(runtime: StatsRuntime, month: str, formula: str | None = None) -> dict[str, Any]:
    """The scorecard of `month` (YYYY-MM) with the formula in effect then, or in month `formula` as a preview."""
    frm, to = assessment.month_span(month, runtime.tz)
    rows = await departments(runtime, frm, to, await counts(runtime, frm, to), latencies=False)
    rules = runtime.assessment.scorecard
    applied = rules.formula(formula or month)
    card = assessment.scorecard(rows, rules, applied)
    return {
        "month": month,
        "from": frm,
        "to": to,
        "timezone": runtime.tz.key,
        "preview": applied != rules.formula(month),
        **card,
    }
