"""Extension notices (延期) as notify plans them (services/notify/planning.py over rules.py): who hears what, when."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.calendars import load_calendars
from libs.config import load_city, load_registry_config, load_sla_config, load_supervision
from libs.events import AppealChanged, SlaClockChanged
from libs.kafka.publishing import make_event
from libs.kinds import AppealStatus, ClockKind, ClockState, EventType
from libs.settings import PROJECT_ROOT
from services.notify import rules
from services.notify.book import NotifyBook
from services.notify.planning import deliveries_owed, template_context

E = EventType
CONFIG = PROJECT_ROOT / "config"
CITY = load_city(CONFIG)
BOOK = NotifyBook(
    CITY,
    load_sla_config(CONFIG),
    load_calendars(CONFIG),
    rules.Renderer(),
    load_registry_config(CONFIG, CITY),
    load_supervision(CONFIG, CITY),
)
LEAD, OFFICE = "futian-finance", CITY.coordinating_office
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Tuesday at 10:00 in Shenzhen: the offices are open, so only quiet hours hold a staff notice.
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
# Due times in UTC, as events carry them; in Shenzhen they read 2026-12-01 10:00 and 2026-11-27 18:00.
GRANTED = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
CURRENT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
REASON = "The bank decides on the deferral next week"
COMMENT = "Once only; resolve by then"
STATUS_URL = "https://web.example.org/appeals/{appeal_id}"
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5"
# The appeal as notify keeps it (copies.py): its submission's facts and its contact.
APPEAL = {
    "_id": APPEAL_ID,
    "title": "Loan due",
    "company_name": "Lanhai",
    "category": "financing",
    "channel": "web",
    "submitted_at": datetime(2026, 11, 20, 2, 0, tzinfo=UTC),
    "contact": {"name": "Li Wei", "phone": "13800138000", "email": "liwei@example.com"},
    "follow_url": f"https://web.example.org/appeals/{APPEAL_ID}?t=token",
}


def extension(type_: EventType, **extra):
    """An extension event as router publishes it: the lead's department, the due times, the lead's reason."""
    actor, clerk = (LEAD, "Zhou Li") if type_ == E.appeal_extension_requested else (OFFICE, "Chen Wei")
    fields = {"actor": actor, "clerk": clerk, "due_at": GRANTED, "previous_due_at": CURRENT, "reason": REASON}
    data = AppealChanged(
        appeal_id=APPEAL_ID,
        status=AppealStatus.accepted,
        sequence=4,
        department=LEAD,
        category="financing",
        channel="web",
        district="futian",
        size_band="micro",
        sla_profile="standard_72h",
        submitted_at=APPEAL["submitted_at"],
        **{**fields, **extra},
    )
    return make_event("appeals/router", type_, APPEAL_ID, data, time=OFFICE_TIME)


def staff(subscriptions: dict[str, dict] | None = None) -> dict[str, rules.Address]:
    """The lead's and the office's staff as planning reads them: config/city.yaml, under any subscription."""
    subs = subscriptions or {}
    return {
        f"{code}:{role}": rules.staff_address(getattr(CITY.department(code), role), subs.get(f"{code}:{role}"))
        for code in (LEAD, OFFICE)
        for role in ("handler", "head", "supervisor")
    }


def owed(event, now=OFFICE_TIME, subscriptions=None, appeal=APPEAL):
    return deliveries_owed(BOOK, event, appeal, staff(subscriptions), now, STATUS_URL)


@pytest.mark.parametrize(
    ("type_", "told"),
    [
        (E.appeal_extension_requested, {(f"{OFFICE}:handler", "email"), (f"{OFFICE}:handler", "wechat")}),
        (
            E.appeal_extension_approved,
            {
                ("company", "sms"),
                ("company", "email"),
                (f"{LEAD}:handler", "email"),
                (f"{LEAD}:handler", "wechat"),
            },
        ),
        (E.appeal_extension_rejected, {(f"{LEAD}:handler", "email"), (f"{LEAD}:handler", "wechat")}),
    ],
)
def test_who_hears_of_an_extension(type_, told):
    deliveries = owed(extension(type_))
    assert sorted((d["recipient"], d["channel"]) for d in deliveries) == sorted(told), "each of them once"
    assert not any(d["urgent"] for d in deliveries), "SMS to staff is for breaches only"


def test_the_office_is_told_of_a_request_with_the_due_time_asked_for_in_shenzhen_and_the_reason():
    [mail] = [d for d in owed(extension(E.appeal_extension_requested)) if d["channel"] == "email"]
    assert mail["to"] == CITY.department(OFFICE).handler.email
    assert mail["template"] == "office_extension_requested"
    lead = CITY.department(LEAD).name
    assert mail["subject"] == f"{lead}申请诉求 {APPEAL_ID} 延期至 2026-12-01 10:00"
    assert "由 2026-11-27 18:00 延至 2026-12-01 10:00" in mail["body"] and REASON in mail["body"]
    assert "Zhou Li" in mail["body"], "the clerk who asked"


def test_the_company_hears_of_an_approval_once_per_channel_with_the_new_date_in_shenzhen_and_the_reason():
    event = extension(E.appeal_extension_approved, note=COMMENT)
    company = [d for d in owed(event) if d["audience"] == "company"]
    assert sorted(d["channel"] for d in company) == ["email", "sms"]
    assert len({d["id"] for d in company}) == 2
    for delivery in company:
        text = delivery["subject"] + "\n" + delivery["body"]
        assert "2026-12-01 10:00" in text and "2026-12-01 02:00" not in text, "the city's time, not UTC"
        assert REASON in text and APPEAL["follow_url"] in text
        assert COMMENT not in text, "the office's comment is for the lead"
        assert delivery["status"] == "pending" and delivery["due_at"] == OFFICE_TIME, "the company is told at once"
    assert {d["to"] for d in company} == {"13800138000", "liwei@example.com"}


def test_a_replayed_approval_owes_the_same_deliveries_under_the_same_ids():
    event = extension(E.appeal_extension_approved)
    assert [d["id"] for d in owed(event)] == [d["id"] for d in owed(event, now=OFFICE_TIME + timedelta(hours=1))]
    assert all(d["id"].startswith(f"{event.id}:") for d in owed(event)), "the notice's insert refuses a second one"


def test_the_clock_sla_moves_for_the_same_approval_tells_nobody():
    """sla publishes sla.extended.v1 when it moves the clock: the company hears of the approval once, not twice."""
    data = SlaClockChanged(
        appeal_id=APPEAL_ID,
        clock_id=f"{APPEAL_ID}:resolution:1",
        clock=ClockKind.resolution,
        department=LEAD,
        state=ClockState.running,
        target="3wd",
        calendar="default",
        sla_profile="standard_72h",
        started_at=APPEAL["submitted_at"],
        due_at=GRANTED,
        original_due_at=CURRENT,
    )
    assert owed(make_event("appeals/sla", E.sla_extended, APPEAL_ID, data, time=OFFICE_TIME)) == []


def test_the_lead_hears_of_an_approval_with_the_new_due_time_and_the_offices_comment_in_its_language():
    event = extension(E.appeal_extension_approved, note=COMMENT)
    english = {f"{LEAD}:handler": {"email": "lead.handler@example.org", "language": "en"}}
    [mail] = [d for d in owed(event, subscriptions=english) if (d["audience"], d["channel"]) == ("handler", "email")]
    assert mail["template"] == "lead_extension_approved" and mail["language"] == "en"
    assert mail["subject"] == f"Extension of appeal {APPEAL_ID} approved: due 2026-12-01 10:00"
    office = CITY.department(OFFICE).name
    assert mail["body"].startswith(f"{office} (Chen Wei) approved the extension")
    assert "instead of 2026-11-27 18:00" in mail["body"] and f"Comment: {COMMENT}" in mail["body"]


def test_the_lead_hears_of_a_rejection_with_the_comment_and_that_the_due_time_stands():
    event = extension(E.appeal_extension_rejected, note=COMMENT)
    mails = [d for d in owed(event) if d["channel"] == "email"]
    assert [(d["recipient"], d["template"]) for d in mails] == [(f"{LEAD}:handler", "lead_extension_rejected")]
    assert f"意见：{COMMENT}" in mails[0]["body"] and "办结时限不变，仍为 2026-11-27 18:00" in mails[0]["body"]


def test_a_staff_notice_waits_for_office_hours_or_the_recipients_quiet_hours_while_the_company_is_told_at_once():
    night = datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
    opening = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    requested = owed(extension(E.appeal_extension_requested), now=night)
    assert {(d["status"], d["due_at"]) for d in requested} == {("held", opening)}, "the office's next opening"
    quiet = {f"{OFFICE}:handler": {"quiet_hours": {"start": "20:00", "end": "07:30"}}}
    after_quiet = datetime(2026, 11, 25, 7, 30, tzinfo=SHANGHAI).astimezone(UTC)
    assert {d["due_at"] for d in owed(extension(E.appeal_extension_requested), now=night, subscriptions=quiet)} == {
        after_quiet
    }
    approved = owed(extension(E.appeal_extension_approved), now=night)
    assert {(d["audience"], d["status"]) for d in approved} == {("company", "pending"), ("handler", "held")}


def test_planning_reads_the_offices_staff_only_for_what_the_office_is_told():
    assert rules.departments_told(E.appeal_extension_requested, LEAD, CITY) == {LEAD, OFFICE}
    assert rules.departments_told(E.appeal_extension_approved, LEAD, CITY) == {LEAD}
    assert rules.departments_told(E.appeal_routed, LEAD, CITY) == {LEAD}
    assert rules.departments_told(E.sla_breached, LEAD, CITY) == {LEAD}
    assert rules.departments_told(E.appeal_extension_requested, None, CITY) == set()


@pytest.mark.parametrize("language", rules.LANGUAGES)
@pytest.mark.parametrize(
    ("type_", "template"),
    [
        (E.appeal_extension_requested, "office_extension_requested"),
        (E.appeal_extension_approved, "extension_approved"),
        (E.appeal_extension_approved, "lead_extension_approved"),
        (E.appeal_extension_rejected, "lead_extension_rejected"),
    ],
)
def test_an_extension_notice_reads_without_the_optional_fields(type_, template, language):
    """A clerk, a comment, a reason or the previous due time missing from an event leaves no 'None' or empty
    brackets in the text."""
    event = extension(type_, clerk=None, note=None, previous_due_at=None, reason=None)
    subject, body = BOOK.renderer.render(template, language, template_context(BOOK, event, APPEAL, STATUS_URL))
    text = subject + "\n" + body
    assert "2026-12-01 10:00" in text or template == "lead_extension_rejected"
    assert "None" not in text and "()" not in text and "（）" not in text and "  " not in text
