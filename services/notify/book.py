"""What notify's planner reads besides the event: the city's configuration, and what it read before."""

from dataclasses import dataclass, field

from cachetools import LRUCache, TTLCache

from libs.calendars import BusinessCalendar, Calendars
from libs.config import City, RegistryConfig, SlaConfig, SupervisionConfig
from services.notify.rules import Ladder, Renderer

# A subscription changed through another replica is seen within this many seconds.
SUBSCRIPTIONS_KEPT_SECONDS = 10.0


@dataclass
class NotifyBook:
    city: City
    sla: SlaConfig
    calendars: Calendars
    renderer: Renderer
    registry: RegistryConfig
    supervision: SupervisionConfig

    @property
    def ladder(self) -> Ladder:
        """Who hears each urging level (催办, 督办), as config/supervision.yaml lists its audiences."""
        return {rung.level: tuple(rung.audiences) for rung in self.supervision.urging.levels}

    def calendar_for(self, department: str | None) -> BusinessCalendar:
        """The calendar a department works by (the default one for none or an unknown one)."""
        return self.calendars.of_department(self.city, department)

    @property
    def timezone(self) -> str:
        """The city's time zone, its offices' (the default calendar's): the times people are told are in it."""
        return self.calendar_for(None).config.timezone


@dataclass
class Memory:
    """What notify read before and may read again without the database.

    An appeal as notify keeps it never changes after submission, so it is safe to
    keep; subscriptions can change (through any replica), so they are kept briefly.
    """

    appeals: LRUCache = field(default_factory=lambda: LRUCache(maxsize=20_000))
    subscriptions: TTLCache = field(default_factory=lambda: TTLCache(maxsize=5_000, ttl=SUBSCRIPTIONS_KEPT_SECONDS))
    # Until adoption finds no record of an earlier version left, the planner checks there first.
    records_left: bool = True
