"""Business calendars (services/sla/calendars.py) against concrete 2026 dates in Asia/Shanghai.

The default calendar opens 09:00-12:00 and 14:00-18:00 (7 office hours a day);
public holidays and make-up working days come from the `holidays` package (CN).
"""

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from libs.calendars import BusinessCalendar, Target, load_calendars, parse_target
from libs.config import ConfigError

CONFIG = Path(__file__).resolve().parents[2] / "config"
SH = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0


def at(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SH)


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@pytest.fixture(scope="module")
def calendars() -> dict[str, BusinessCalendar]:
    return load_calendars(CONFIG)


@pytest.fixture(scope="module")
def default(calendars) -> BusinessCalendar:
    return calendars["default"]


@pytest.fixture(scope="module")
def nanshan(calendars) -> BusinessCalendar:
    return calendars["nanshan"]


@pytest.fixture(scope="module")
def around(calendars) -> BusinessCalendar:
    return calendars["around_the_clock"]


def wd(calendar: BusinessCalendar, text: str) -> float:
    """A working-day target in office seconds of `calendar`."""
    return calendar.budget(parse_target(text))


# ---------------------------------------------------------------- the shipped calendars


def test_shipped_calendars_and_their_office_day(calendars, default, nanshan, around):
    assert {"default", "nanshan", "around_the_clock"} <= set(calendars)
    assert default.name == "default"
    assert default.zone == SH
    assert default.day_seconds == 7 * HOUR
    assert nanshan.day_seconds == 8 * HOUR
    assert around.day_seconds == 24 * HOUR


# ---------------------------------------------------------------- working days in 2026


@pytest.mark.parametrize("day", [date(2026, 2, 14), date(2026, 2, 28), date(2026, 9, 20), date(2026, 10, 10)])
def test_make_up_weekend_days_are_working_days(default, day):
    assert day.weekday() >= 5
    assert default.is_working_day(day)


@pytest.mark.parametrize("day", days(date(2026, 2, 15), date(2026, 2, 23)))
def test_spring_festival_2026_is_closed(default, day):
    assert not default.is_working_day(day)


@pytest.mark.parametrize("day", days(date(2026, 10, 1), date(2026, 10, 7)))
def test_national_day_2026_is_closed(default, day):
    assert not default.is_working_day(day)


def test_ordinary_weekdays_open_and_ordinary_weekends_closed(default):
    assert default.is_working_day(date(2026, 2, 12))  # Thursday
    assert default.is_working_day(date(2026, 2, 13))  # Friday before the festival
    assert default.is_working_day(date(2026, 2, 24))  # Tuesday after it
    assert not default.is_working_day(date(2026, 2, 7))  # ordinary Saturday
    assert not default.is_working_day(date(2026, 3, 1))  # ordinary Sunday


def test_upcoming_lists_spring_festival_closures_and_make_up_days(default):
    assert default.upcoming(date(2026, 2, 9), 28) == {
        "holidays": ["2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20", "2026-02-23"],
        "makeup_workdays": ["2026-02-14", "2026-02-28"],
    }


def test_upcoming_around_national_day(default):
    upcoming = default.upcoming(date(2026, 9, 14), 30)
    assert {"2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"} <= set(upcoming["holidays"])
    assert upcoming["makeup_workdays"] == ["2026-09-20", "2026-10-10"]


def test_upcoming_lists_nothing_for_a_calendar_open_every_day(around):
    assert around.upcoming(date(2026, 2, 9), 28) == {"holidays": [], "makeup_workdays": []}


# ---------------------------------------------------------------- working-day arithmetic


def test_three_working_days_from_friday_before_spring_festival(default):
    # Fri 16:00-18:00 (2 h), Sat 14th make-up day (7 h), Tue 24th (7 h), Wed 25th 09:00-16:00 (5 h).
    due = default.add_working(at(2, 13, 16), wd(default, "3wd"))
    assert due == at(2, 25, 16)


def test_three_working_days_from_eve_of_national_day(default):
    # Wed 30 Sep 16:00-18:00, then closed 1-7 Oct, Thu 8th, Fri 9th, make-up Sat 10th until 16:00.
    assert default.add_working(at(9, 30, 16), wd(default, "3wd")) == at(10, 10, 16)


def test_add_working_result_is_the_same_instant_in_any_zone(default):
    due = default.add_working(at(2, 13, 16), wd(default, "3wd"))
    assert due.astimezone(SH).replace(tzinfo=None) == datetime(2026, 2, 25, 16)


def test_one_working_day_within_an_ordinary_week(default):
    assert default.add_working(at(3, 3, 10), wd(default, "1wd")) == at(3, 4, 10)  # Tue 10:00 -> Wed 10:00
    assert default.add_working(at(3, 6, 10), wd(default, "1wd")) == at(3, 9, 10)  # Fri -> Mon over the weekend


@pytest.mark.parametrize(
    ("start", "due"),
    [
        (at(3, 3, 7), at(3, 3, 10)),  # before opening: counts from 09:00
        (at(3, 3, 12, 30), at(3, 3, 15)),  # lunch: counts from 14:00
        (at(3, 3, 12), at(3, 3, 15)),  # exactly at the lunch close
        (at(3, 3, 19), at(3, 4, 10)),  # after closing: counts from next morning
        (at(3, 3, 18), at(3, 4, 10)),  # exactly at closing
        (at(3, 1, 10), at(3, 2, 10)),  # Sunday: counts from Monday 09:00
        (at(2, 17, 10), at(2, 24, 10)),  # during the festival: counts from Tue 24th
    ],
)
def test_start_outside_office_hours_counts_from_next_opening(default, start, due):
    assert default.add_working(start, HOUR) == due


def test_start_outside_office_hours_for_whole_working_days(default):
    # Lunch start: 14:00-18:00 Tue, 09:00-12:00 Wed = 7 h; ends at Wednesday's lunch close.
    assert default.add_working(at(3, 3, 12, 30), wd(default, "1wd")) == at(3, 4, 12)
    # Before opening: 09:00 Tue + 7 h ends at Tue 18:00 (not Wed 09:00).
    assert default.add_working(at(3, 3, 7), wd(default, "1wd")) == at(3, 3, 18)


def test_fraction_of_a_working_day(default):
    # 1.5 wd = 10.5 h: Tue 09:00-18:00 (7 h), Wed 09:00-12:00 (3 h), 14:00-14:30.
    assert parse_target("1.5wd").working_days == 1.5
    assert default.add_working(at(3, 3, 9), wd(default, "1.5wd")) == at(3, 4, 14, 30)


def test_add_working_of_nothing_is_the_start(default):
    start = at(3, 1, 10)  # a Sunday: no rounding to the next opening
    assert default.add_working(start, 0) == start
    assert default.add_working(start, -5) == start


def test_working_between_concrete_spans(default):
    assert default.working_between(at(2, 13, 16), at(2, 25, 16)) == 21 * HOUR
    assert default.working_between(at(3, 3, 7), at(3, 3, 20)) == 7 * HOUR
    assert default.working_between(at(3, 3, 12), at(3, 3, 14)) == 0  # lunch
    assert default.working_between(at(2, 15), at(2, 23, 23, 59)) == 0  # festival
    assert default.working_between(at(2, 14, 8), at(2, 14, 20)) == 7 * HOUR  # make-up Saturday
    assert default.working_between(at(3, 4), at(3, 3)) == 0  # end before start
    assert default.working_between(at(3, 3, 10), at(3, 3, 10)) == 0


STARTS = [
    at(2, 13, 16),  # Friday afternoon before the Spring Festival
    at(2, 14, 11, 15),  # make-up Saturday
    at(2, 18, 10),  # inside the festival
    at(3, 3, 7, 45),  # before opening
    at(3, 3, 12, 30),  # lunch
    at(3, 6, 17, 59),  # last minute of a Friday
    at(9, 30, 16),  # eve of National Day
    at(10, 4, 3),  # middle of the night inside the holiday
]
AMOUNTS = [
    1.0,
    59.5,
    0.25 * HOUR,
    2 * HOUR,
    3.5 * HOUR,
    7 * HOUR,
    10.5 * HOUR,
    2.75 * 7 * HOUR,
    21 * HOUR,
    35 * HOUR,
]  # increasing


@pytest.mark.parametrize("calendar_name", ["default", "nanshan", "around_the_clock"])
def test_working_between_is_the_inverse_of_add_working(calendars, calendar_name):
    calendar = calendars[calendar_name]
    for start in STARTS:
        previous = start
        for seconds in AMOUNTS:
            end = calendar.add_working(start, seconds)
            assert end >= previous, (start, seconds)  # monotonic in the amount
            previous = end
            assert calendar.working_between(start, end) == pytest.approx(seconds, abs=1e-3), (start, seconds)


def test_add_working_of_working_between_returns_the_end_inside_office_hours(default):
    for start in STARTS:
        for end in (at(2, 25, 16), at(3, 3, 10, 20), at(10, 10, 9, 1)):
            if end <= start:
                continue
            assert default.add_working(start, default.working_between(start, end)) == end


def test_add_working_of_working_between_returns_the_last_close_outside_office_hours(default):
    # From Wed 16:00 to Thu 13:00 there are 2 + 3 office hours; they run out at Thu 12:00.
    start, end = at(3, 4, 16), at(3, 5, 13)
    assert default.working_between(start, end) == 5 * HOUR
    assert default.add_working(start, 5 * HOUR) == at(3, 5, 12)


# ---------------------------------------------------------------- calendar-hour targets


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("6h", timedelta(hours=6)),
        ("24h", timedelta(hours=24)),
        ("10s", timedelta(seconds=10)),
        ("2d", timedelta(days=2)),
        ("30m", timedelta(minutes=30)),
    ],
)
def test_calendar_targets_are_plain_time_across_holidays(default, text, delta):
    target = parse_target(text)
    assert not target.working
    assert target.seconds == delta.total_seconds()
    assert default.budget(target) == delta.total_seconds()
    for start in (at(2, 13, 16), at(2, 17, 3), at(9, 30, 23)):
        end = default.add(target, start, default.budget(target))
        assert end == start + delta
        assert default.elapsed(target, start, end) == delta.total_seconds()


def test_calendar_elapsed_is_never_negative(default):
    assert default.elapsed(parse_target("6h"), at(3, 3, 10), at(3, 3, 9)) == 0


def test_working_target_uses_office_time(default):
    target = parse_target("3wd")
    assert target.working
    assert target.working_days == 3
    assert target.seconds == 0
    assert default.budget(target) == 21 * HOUR
    assert default.add(target, at(2, 13, 16), 21 * HOUR) == at(2, 25, 16)
    assert default.elapsed(target, at(2, 13, 16), at(2, 25, 16)) == 21 * HOUR


# ---------------------------------------------------------------- parse_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("6h", Target("6h", 6 * HOUR)),
        ("30m", Target("30m", 1800.0)),
        ("10s", Target("10s", 10.0)),
        ("2d", Target("2d", 2 * 86400.0)),
        ("3wd", Target("3wd", 0.0, 3.0)),
        (" 5wd ", Target(" 5wd ", 0.0, 5.0)),
        ("1.5h", Target("1.5h", 5400.0)),
    ],
)
def test_parse_target(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["", "3x", "0h", "-1h", "h", "3", "3 wd x", "0wd", "0.0s", "1,5h"])
def test_parse_target_rejects(text):
    with pytest.raises(ValueError):
        parse_target(text)


def test_parse_target_error_names_the_text():
    with pytest.raises(ValueError, match="'3x'"):
        parse_target("3x")
    with pytest.raises(ValueError, match="positive"):
        parse_target("0h")


# ---------------------------------------------------------------- other calendars


def test_nanshan_opens_earlier_and_closes_later(default, nanshan):
    # 08:45: default counts from 09:00 and has 7 h by 18:00; Nanshan needs 8 h and runs into the next morning.
    assert default.add_working(at(3, 3, 8, 45), wd(default, "1wd")) == at(3, 3, 18)
    assert nanshan.add_working(at(3, 3, 8, 45), wd(nanshan, "1wd")) == at(3, 4, 8, 45)
    # One office hour from 08:00 and from 13:00.
    assert default.add_working(at(3, 3, 8), HOUR) == at(3, 3, 10)
    assert nanshan.add_working(at(3, 3, 8), HOUR) == at(3, 3, 9, 30)
    assert default.add_working(at(3, 3, 13), HOUR) == at(3, 3, 15)
    assert nanshan.add_working(at(3, 3, 13), HOUR) == at(3, 3, 14, 30)
    # The same span holds different office time.
    assert default.working_between(at(3, 3), at(3, 4)) == 7 * HOUR
    assert nanshan.working_between(at(3, 3), at(3, 4)) == 8 * HOUR


def test_nanshan_follows_the_same_holidays(nanshan):
    assert nanshan.is_working_day(date(2026, 2, 14))
    assert not nanshan.is_working_day(date(2026, 2, 18))
    assert nanshan.add_working(at(2, 13, 16), wd(nanshan, "3wd")) == at(2, 25, 16)


def test_around_the_clock_counts_weekends_and_holidays(around):
    for day in [date(2026, 2, 15), date(2026, 2, 18), date(2026, 2, 21), date(2026, 10, 1), date(2026, 10, 4)]:
        assert around.is_working_day(day)
    assert around.add_working(at(2, 13, 16), wd(around, "3wd")) == at(2, 16, 16)
    assert around.add_working(at(9, 30, 16), wd(around, "3wd")) == at(10, 3, 16)
    assert around.working_between(at(2, 15), at(2, 16)) == 24 * HOUR
    assert around.add_working(at(2, 17, 23), 2 * HOUR) == at(2, 18, 1)  # across midnight (24:00 close)


# ---------------------------------------------------------------- load_calendars


def _config_copy(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(CONFIG, target)
    return target


def _rewrite(config_dir: Path, change) -> None:
    path = config_dir / "calendars.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")


def test_load_calendars_requires_a_default_calendar(tmp_path):
    config_dir = _config_copy(tmp_path)
    _rewrite(config_dir, lambda data: data["calendars"].pop("default"))
    with pytest.raises(ConfigError, match="calendars.yaml") as info:
        load_calendars(config_dir)
    assert "default" in str(info.value)


def test_load_calendars_rejects_a_malformed_timezone(tmp_path):
    config_dir = _config_copy(tmp_path)
    _rewrite(config_dir, lambda data: data["calendars"]["nanshan"].update(timezone="/etc/localtime"))
    with pytest.raises(ConfigError, match="calendars.yaml") as info:
        load_calendars(config_dir)
    assert "nanshan" in str(info.value) and "timezone" in str(info.value)


def test_load_calendars_rejects_an_unknown_timezone(tmp_path):
    config_dir = _config_copy(tmp_path)
    _rewrite(config_dir, lambda data: data["calendars"]["nanshan"].update(timezone="Mars/Olympus"))
    with pytest.raises(ConfigError, match="calendars.yaml"):
        load_calendars(config_dir)


def test_load_calendars_rejects_office_hours_adding_up_to_nothing(tmp_path):
    config_dir = _config_copy(tmp_path)
    _rewrite(
        config_dir, lambda data: data["calendars"]["nanshan"].update(office_hours=[{"start": "09:00", "end": "09:00"}])
    )
    with pytest.raises(ConfigError, match="office_hours"):
        load_calendars(config_dir)


def test_load_calendars_rejects_unknown_fields_and_bad_times(tmp_path):
    config_dir = _config_copy(tmp_path)
    _rewrite(
        config_dir, lambda data: data["calendars"]["default"].update(office_hours=[{"start": "9", "end": "18:00"}])
    )
    with pytest.raises(ConfigError, match="calendars.yaml"):
        load_calendars(config_dir)
    _rewrite(
        config_dir,
        lambda data: data["calendars"]["default"].update(
            office_hours=[{"start": "09:00", "end": "18:00"}], opening="09:00"
        ),
    )
    with pytest.raises(ConfigError, match="calendars.yaml"):
        load_calendars(config_dir)


def test_load_calendars_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="calendars.yaml"):
        load_calendars(tmp_path)


def test_extra_holidays_and_workdays_override_the_package(tmp_path):
    config_dir = _config_copy(tmp_path)

    def change(data):
        data["calendars"]["default"]["extra_holidays"] = ["2026-03-03"]
        data["calendars"]["default"]["extra_workdays"] = ["2026-02-18"]

    _rewrite(config_dir, change)
    calendar = load_calendars(config_dir)["default"]
    assert not calendar.is_working_day(date(2026, 3, 3))
    assert calendar.is_working_day(date(2026, 2, 18))
    assert calendar.add_working(at(3, 2, 17), 2 * HOUR) == at(3, 4, 10)
