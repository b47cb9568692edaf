"""Business calendars and SLA targets, shared by sla (deadlines) and notify (quiet hours).

"3wd" is three working days of office time: from Friday 16:00 with offices open
09:00-12:00 and 14:00-18:00, two hours count on Friday and the rest on the next
working days, skipping weekends and public holidays but counting make-up
working Saturdays. This is the business-hours arithmetic SLA tools use; it
agrees with "the same time on the third working day" to within the office day.
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import Field, field_validator

from libs.config import City, StrictModel, config_error, load_yaml

_TARGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(wd|d|h|m|s)\s*$")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DAYS_SEARCHED = 3660


@dataclass(frozen=True)
class Target:
    """A parsed target: `working` targets count office time on a calendar."""

    text: str
    seconds: float
    working_days: float | None = None

    @property
    def working(self) -> bool:
        return self.working_days is not None


def parse_target(text: str) -> Target:
    """Parse '6h', '30m', '10s', '2d' (calendar) or '3wd' (working days); raises ValueError."""
    match = _TARGET.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 6h, 30m, 10s, 2d or 3wd")
    amount, unit = float(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"{text!r} must be positive")
    if unit == "wd":
        return Target(text, 0.0, amount)
    return Target(text, amount * _UNIT_SECONDS[unit])


class OfficeHours(StrictModel):
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class CalendarConfig(StrictModel):
    description: str = ""
    timezone: str = "Asia/Shanghai"
    country: str | None = Field(default="CN", description="holidays package country code; none for no holidays.")
    weekends_work: bool = False
    office_hours: list[OfficeHours]
    extra_holidays: list[date] = Field(default_factory=list)
    extra_workdays: list[date] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class CalendarsFile(StrictModel):
    """`config/calendars.yaml`."""

    calendars: dict[str, CalendarConfig]


def _clock(text: str) -> time:
    return time.max if text == "24:00" else time.fromisoformat(text)


@dataclass
class BusinessCalendar:
    """Working days and office hours of one calendar."""

    name: str
    config: CalendarConfig
    _holidays: holidays.HolidayBase | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.config.country:
            self._holidays = holidays.country_holidays(self.config.country)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.config.timezone)

    @cached_property
    def intervals(self) -> list[tuple[time, time]]:
        return sorted((_clock(h.start), _clock(h.end)) for h in self.config.office_hours)

    @cached_property
    def day_seconds(self) -> float:
        """Office seconds in one working day."""
        base = date(2000, 1, 1)
        return sum((self._at(base, end) - self._at(base, start)).total_seconds() for start, end in self.intervals)

    def _at(self, day: date, moment: time) -> datetime:
        if moment == time.max:
            return datetime.combine(day + timedelta(days=1), time.min, self.zone)
        return datetime.combine(day, moment, self.zone)

    def is_working_day(self, day: date) -> bool:
        """Whether offices open on `day` (make-up working days included)."""
        if day in self.config.extra_workdays:
            return True
        if day in self.config.extra_holidays:
            return False
        if self._holidays is not None:
            if self.config.weekends_work:
                return day not in self._holidays
            return self._holidays.is_working_day(day)
        return self.config.weekends_work or day.weekday() < 5

    def _office_spans(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Office spans (open, close) from the day of `start` on, clipped to begin no earlier than `start`."""
        day = start.astimezone(self.zone).date()
        for _ in range(MAX_DAYS_SEARCHED):
            if self.is_working_day(day):
                for open_at, close_at in self.intervals:
                    begin, end = max(self._at(day, open_at), start), self._at(day, close_at)
                    if begin < end:
                        yield begin, end
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name} has no office time within {MAX_DAYS_SEARCHED} days")

    def next_opening(self, at: datetime) -> datetime:
        """`at` itself during office hours, otherwise when the offices next open."""
        return next(self._office_spans(at))[0].astimezone(UTC)

    def add_working(self, start: datetime, seconds: float) -> datetime:
        """The instant when `seconds` of office time have passed since `start`."""
        remaining = seconds
        if remaining <= 0:
            return start
        for begin, end in self._office_spans(start):
            available = (end - begin).total_seconds()
            if remaining <= available:
                return (begin + timedelta(seconds=remaining)).astimezone(UTC)
            remaining -= available
        raise AssertionError("unreachable")

    def working_between(self, start: datetime, end: datetime) -> float:
        """Office seconds between two instants (0 if `end` is not after `start`)."""
        total = 0.0
        if end <= start:
            return total
        for begin, close in self._office_spans(start):
            if begin >= end:
                break
            total += (min(close, end) - begin).total_seconds()
        return total

    def budget(self, target: Target) -> float:
        """The target in seconds of the time it counts (office seconds for working days)."""
        return target.working_days * self.day_seconds if target.working_days is not None else target.seconds

    def add(self, target: Target, start: datetime, seconds: float) -> datetime:
        """`start` plus `seconds` of the kind of time `target` counts."""
        if target.working:
            return self.add_working(start, seconds)
        return start + timedelta(seconds=seconds)

    def elapsed(self, target: Target, start: datetime, end: datetime) -> float:
        """Time of the kind `target` counts between two instants."""
        if target.working:
            return self.working_between(start, end)
        return max(0.0, (end - start).total_seconds())

    def upcoming(self, start: date, days: int) -> dict[str, list[str]]:
        """Non-working weekdays and working weekend days in the next `days` days, for people to read."""
        closed, opened = [], []
        for offset in range(days):
            day = start + timedelta(days=offset)
            working = self.is_working_day(day)
            if day.weekday() < 5 and not working:
                closed.append(day.isoformat())
            elif day.weekday() >= 5 and working and not self.config.weekends_work:
                opened.append(day.isoformat())
        return {"holidays": closed, "makeup_workdays": opened}


class Calendars(dict[str, BusinessCalendar]):
    """The configured calendars by name; `default` stands in for a name or department not configured."""

    def named(self, name: str) -> BusinessCalendar:
        """A calendar by name (a clock keeps the name it started with, which the configuration may drop)."""
        return self.get(name, self["default"])

    def of_department(self, city: City, department: str | None) -> BusinessCalendar:
        """The calendar a department works by."""
        dept = city.department(department) if department else None
        return self.named(dept.calendar if dept else "default")


def load_calendars(config_dir: Path) -> Calendars:
    """Load `calendars.yaml`; a `default` calendar is required."""
    path = config_dir / "calendars.yaml"
    parsed = load_yaml(path, CalendarsFile)
    if "default" not in parsed.calendars:
        raise config_error(path, "calendars", "default", "a calendar named 'default' is required")
    calendars = Calendars()
    for name, cfg in parsed.calendars.items():
        calendar = BusinessCalendar(name, cfg)
        if calendar.day_seconds <= 0:
            raise config_error(path, f"calendars.{name}", "office_hours", "office hours must add up to some time")
        calendars[name] = calendar
    return calendars
