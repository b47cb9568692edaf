"""When routing is too far behind, intake asks channels to come back later, and for how long."""

from services.intake.service import Backlog, longest_wait, shed_wait


def backlog(*measures: tuple[int | None, float]) -> Backlog:
    kept = Backlog()
    for records, at in measures:
        kept.measured(records, at)
    return kept


def test_a_backlog_at_or_under_the_limit_sheds_nothing():
    assert shed_wait(backlog((1000, 0.0)), 1000, 5) is None
    assert shed_wait(backlog((10, 0.0)), 1000, 5) is None


def test_no_measure_sheds_nothing():
    assert shed_wait(Backlog(), 1000, 5) is None
    assert shed_wait(backlog((5000, 0.0), (None, 2.0)), 1000, 5) is None


def test_a_limit_of_zero_never_sheds():
    assert shed_wait(backlog((10**6, 0.0)), 0, 5) is None


def test_over_the_limit_and_not_draining_asks_the_default_wait():
    assert shed_wait(backlog((1500, 0.0)), 1000, 5) == 5
    assert shed_wait(backlog((1500, 0.0), (1600, 2.0)), 1000, 5) == 5


def test_the_wait_is_the_time_to_drain_to_half_the_limit():
    # 200 records read in 2 s: 100/s; from 1,500 to 500 takes 10 s.
    assert shed_wait(backlog((1700, 0.0), (1500, 2.0)), 1000, 5) == 10


def test_the_wait_stays_between_one_second_and_a_minute():
    assert shed_wait(backlog((100_000, 0.0), (99_000, 1.0)), 1000, 5) == 60
    assert shed_wait(backlog((10_000, 0.0), (1001, 0.001)), 1000, 5) == 1


def test_the_group_furthest_behind_sets_the_wait_and_is_named():
    backlogs = {
        "router.submitted": backlog((100, 0.0), (50, 1.0)),
        "sla.lifecycle": backlog((1700, 0.0), (1500, 2.0)),
        "notify.event": backlog((1200, 0.0), (1100, 1.0)),
    }
    assert longest_wait(backlogs, 1000, 5) == (10, "sla.lifecycle")
    assert longest_wait({"router.submitted": backlogs["router.submitted"]}, 1000, 5) is None
