"""SLA's response bodies."""

from datetime import datetime

from pydantic import BaseModel, Field


class ClockView(BaseModel):
    """One clock of an appeal."""

    clock_id: str
    clock: str = Field(examples=["response"])
    department: str
    state: str = Field(examples=["running"])
    target: str = Field(examples=["3wd"])
    calendar: str
    sla_profile: str
    started_at: datetime
    due_at: datetime | None = Field(description="None while paused.")
    original_due_at: datetime | None = Field(
        default=None, description="For an extended clock: its due time before the approved extension (延期)."
    )
    remaining_seconds: float = Field(
        description="Target time left; negative when overdue. Office seconds for "
        "working-day targets, calendar seconds otherwise."
    )
    remaining: str = Field(
        description="The same, for people: '1d 2h 5m' of working or calendar time.", examples=["4h 12m"]
    )
    paused: bool
    breached: bool
    warnings_fired: list[int] = Field(description="Thresholds already fired: 50, 80, 100.")
    urge_level: int | None = Field(
        default=None,
        description="The urging ladder's level reached (1: the breach, 2: 催办, 3: 督办; config/supervision.yaml); "
        "none before a breach.",
        examples=[2],
    )
    next_urge_at: datetime | None = Field(
        default=None,
        description="When the ladder's next level falls due, while the breached clock awaits its answer.",
    )
    ended_at: datetime | None = None


class AppealClocks(BaseModel):
    appeal_id: str
    clocks: list[ClockView]


class CalendarView(BaseModel):
    name: str
    description: str
    timezone: str
    country: str | None
    office_hours: list[dict]
    working_day_hours: float
    holidays: list[str] = Field(description="Weekdays without office hours in the coming year.")
    makeup_workdays: list[str] = Field(description="Weekend days with office hours in the coming year.")
