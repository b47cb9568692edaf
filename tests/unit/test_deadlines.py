"""An appeal's clocks as sla reports them: the latest report of each clock wins, whatever order they come in."""

from datetime import timedelta

from libs.deadlines import merged_clocks, next_due
from libs.kinds import EventType
from tests.unit.test_stats import T0, clock_event


def test_the_latest_report_of_each_clock_wins_and_next_due_is_the_soonest_running_one():
    started = clock_event(EventType.sla_started, "running", T0, clock="scope", due=T0 + timedelta(hours=6))
    met = clock_event(EventType.sla_met, "met", T0 + timedelta(hours=1), clock="scope", due=T0 + timedelta(hours=6))
    resolution = clock_event(EventType.sla_started, "running", T0, clock="resolution", due=T0 + timedelta(hours=72))
    clocks = merged_clocks({}, [started, resolution])
    assert next_due({"clocks": clocks}) == T0 + timedelta(hours=6)
    clocks = merged_clocks(clocks, [met])
    assert clocks[met.data.clock_id]["state"] == "met"
    assert next_due({"clocks": clocks}) == T0 + timedelta(hours=72), "a met clock is due no more"
    assert merged_clocks(clocks, [started]) == clocks, "an older report, redelivered, changes nothing"
    assert next_due({"clocks": {}}) is None
