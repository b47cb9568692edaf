"""The urging ladder (催办, 督办) and urging by hand as notify plans them (services/notify/planning.py over rules.py):
who hears each level, from config/supervision.yaml's audiences, what they read, and when."""

import shutil
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from libs.calendars import load_calendars
from libs.config import ConfigError, load_city, load_registry_config, load_sla_config, load_supervision
from libs.envelopes import unpacked
from libs.events import AppealChanged, SlaClockChanged
from libs.kafka.publishing import make_event
from libs.kinds import AppealStatus, ClockKind, ClockState, EventType
from libs.settings import PROJECT_ROOT
from services.notify import rules
from services.notify.app import create_app
from services.notify.book import NotifyBook
from services.notify.planning import deliveries_owed, template_context
from services.notify.settings import NotifySettings
from tests.helpers import packed

E = EventType
CONFIG = PROJECT_ROOT / "config"
CITY = load_city(CONFIG)
SUPERVISION = load_supervision(CONFIG, CITY)


def book(supervision=SUPERVISION) -> NotifyBook:
    return NotifyBook(
        CITY,
        load_sla_config(CONFIG),
        load_calendars(CONFIG),
        rules.Renderer(),
        load_registry_config(CONFIG, CITY),
        supervision,
    )


BOOK = book()
LEAD, OFFICE, CITY_SUPERVISOR = "futian-finance", CITY.coordinating_office, "city:supervisor"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Tuesday at 10:00 in Shenzhen: the offices are open, so only quiet hours hold a staff notice.
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
# The resolution time missed: Friday 2026-11-20 18:00 in Shenzhen, 3 days 16 hours before OFFICE_TIME; extended
# from Tuesday 2026-11-17 18:00.
MISSED = datetime(2026, 11, 20, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)
ORIGINAL = datetime(2026, 11, 17, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)
NOTE = "Answer the company by Friday and report to the office"
STATUS_URL = "https://web.example.org/appeals/{appeal_id}"
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P7"
APPEAL = {
    "_id": APPEAL_ID,
    "title": "Loan due",
    "company_name": "Lanhai",
    "category": "financing",
    "channel": "web",
    "submitted_at": datetime(2026, 11, 16, 2, 0, tzinfo=UTC),
    "contact": {"name": "Li Wei", "phone": "13800138000", "email": "liwei@example.com"},
    "follow_url": f"https://web.example.org/appeals/{APPEAL_ID}?t=token",
}


def name(code: str) -> str:
    return CITY.department(code).name


def urged(level: int, department: str = LEAD, fired_at: datetime = OFFICE_TIME, **extra):
    """An urging level as sla reports it: the breached clock, its missed due time, the level reached."""
    fields = {
        "clock": ClockKind.resolution,
        "due_at": MISSED,
        "original_due_at": ORIGINAL,
        "target": "72h",
        **extra,
    }
    data = SlaClockChanged(
        appeal_id=APPEAL_ID,
        clock_id=f"{APPEAL_ID}:resolution:1",
        department=department,
        state=ClockState.breached,
        calendar="default",
        sla_profile="standard_72h",
        started_at=APPEAL["submitted_at"],
        fired_at=fired_at,
        urge_level=level,
        **fields,
    )
    return make_event("appeals/sla", E.sla_urged, APPEAL_ID, data, time=fired_at)


def by_hand(**extra):
    """The office urging the lead by hand, as router publishes it (services/router/office.py)."""
    fields = {"actor": OFFICE, "clerk": "Chen Wei", "note": NOTE, **extra}
    data = AppealChanged(
        appeal_id=APPEAL_ID,
        status=AppealStatus.accepted,
        sequence=6,
        department=LEAD,
        category="financing",
        channel="web",
        district="futian",
        size_band="micro",
        sla_profile="standard_72h",
        submitted_at=APPEAL["submitted_at"],
        **fields,
    )
    return make_event("appeals/router", E.appeal_urged, APPEAL_ID, data, time=OFFICE_TIME)


def staff(subscriptions: dict[str, dict] | None = None, departments=(LEAD, OFFICE)) -> dict[str, rules.Address]:
    """The staff planning reads for an urging level: each department's roles and the city's supervisor
    (config/city.yaml), under any subscription."""
    subs = subscriptions or {}
    people = {
        f"{code}:{role}": getattr(CITY.department(code), role) for code in departments for role in rules.STAFF_ROLES
    }
    people[CITY_SUPERVISOR] = CITY.city_supervisor
    return {recipient: rules.staff_address(person, subs.get(recipient)) for recipient, person in people.items()}


def owed(evt, now=OFFICE_TIME, subscriptions=None, appeal=APPEAL, on=BOOK, departments=(LEAD, OFFICE)):
    return deliveries_owed(on, evt, appeal, staff(subscriptions, departments), now, STATUS_URL)


def told(deliveries) -> set[tuple[str, str]]:
    return {(d["recipient"], d["audience"]) for d in deliveries}


def mail_to(deliveries, recipient):
    [mail] = [d for d in deliveries if (d["recipient"], d["channel"]) == (recipient, "email")]
    return mail


def test_the_configured_ladder_is_the_one_the_domain_describes():
    assert BOOK.ladder == {2: ("head", "coordinating_office_head"), 3: ("leadership", "city_supervisor")}


@pytest.mark.parametrize(
    ("level", "who"),
    [
        pytest.param(2, {(f"{LEAD}:head", "head"), (f"{OFFICE}:head", "head")}, id="催办: the head, the office's head"),
        pytest.param(
            3,
            {(f"{LEAD}:leadership", "leadership"), (CITY_SUPERVISOR, "city_supervisor")},
            id="督办: the department's leadership, the city's supervisor",
        ),
    ],
)
def test_who_hears_each_urging_level(level, who):
    deliveries = owed(urged(level))
    assert told(deliveries) == who
    assert sorted((d["recipient"], d["channel"]) for d in deliveries) == sorted(
        (recipient, ch) for recipient, _ in who for ch in ("email", "wechat")
    ), "each once on each staff channel"
    assert not any(d["urgent"] for d in deliveries), "no SMS: an urging level waits like other staff notices"
    assert all(d["template"] == "sla_urged" for d in deliveries)


def test_each_is_reached_at_the_address_city_yaml_gives():
    three = owed(urged(3))
    assert mail_to(three, f"{LEAD}:leadership")["to"] == CITY.department(LEAD).leadership.email
    assert mail_to(three, CITY_SUPERVISOR)["to"] == CITY.city_supervisor.email
    two = owed(urged(2))
    assert mail_to(two, f"{OFFICE}:head")["to"] == CITY.department(OFFICE).head.email


def test_a_subscription_of_the_city_supervisor_overrides_its_contact():
    subs = {CITY_SUPERVISOR: {"email": "duban@example.org", "webhook_url": "https://duban.example.org/hook"}}
    deliveries = [d for d in owed(urged(3), subscriptions=subs) if d["recipient"] == CITY_SUPERVISOR]
    assert {(d["channel"], d["to"]) for d in deliveries} == {
        ("email", "duban@example.org"),
        ("wechat", CITY.city_supervisor.wechat_openid),
        ("webhook", "https://duban.example.org/hook"),
    }


def test_nobody_else_hears_an_urging_level():
    """Not the company, not the handler, not level 1's supervisor: the ladder's audiences only."""
    for level in (2, 3):
        recipients = {d["recipient"] for d in owed(urged(level))}
        assert "company" not in recipients and f"{LEAD}:handler" not in recipients
        assert f"{LEAD}:supervisor" not in recipients


def test_a_changed_audiences_list_changes_who_hears(tmp_path):
    """A deployment's config/supervision.yaml says who hears which level; notify reads it, not a table of its own."""
    for path in CONFIG.iterdir():
        if path.suffix == ".yaml":
            shutil.copy(path, tmp_path / path.name)
    raw = yaml.safe_load((CONFIG / "supervision.yaml").read_text(encoding="utf-8"))
    raw["urging"]["levels"][0]["audiences"] = ["supervisor", "leadership"]
    raw["urging"]["levels"][1]["audiences"] = ["head", "coordinating_office_head", "city_supervisor"]
    (tmp_path / "supervision.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    changed = book(load_supervision(tmp_path, CITY))
    assert told(owed(urged(2), on=changed)) == {
        (f"{LEAD}:supervisor", "supervisor"),
        (f"{LEAD}:leadership", "leadership"),
    }
    assert told(owed(urged(3), on=changed)) == {
        (f"{LEAD}:head", "head"),
        (f"{OFFICE}:head", "head"),
        (CITY_SUPERVISOR, "city_supervisor"),
    }


def test_a_level_the_ladder_does_not_have_tells_nobody():
    assert owed(urged(4)) == []
    shorter = book(SUPERVISION.model_copy(update={"urging": SUPERVISION.urging.model_copy(update={"levels": []})}))
    assert owed(urged(2), on=shorter) == [] and owed(urged(3), on=shorter) == []


def test_the_office_urged_itself_has_its_head_told_once():
    deliveries = owed(urged(2, department=OFFICE), departments=(OFFICE,))
    assert told(deliveries) == {(f"{OFFICE}:head", "head")}
    assert len([d for d in deliveries if d["channel"] == "email"]) == 1


def test_quiet_hours_and_office_hours_hold_an_urging_level():
    night = datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
    opening = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    for level in (2, 3):
        deliveries = owed(urged(level, fired_at=night), now=night)
        assert {(d["status"], d["due_at"]) for d in deliveries} == {("held", opening)}, level
        assert not [d for d in deliveries if d["channel"] == "sms"], "never an SMS, at night or by day"
    quiet = {f"{LEAD}:head": {"email": "head@example.org", "quiet_hours": {"start": "20:00", "end": "07:30"}}}
    after_quiet = datetime(2026, 11, 25, 7, 30, tzinfo=SHANGHAI).astimezone(UTC)
    held = owed(urged(2, fired_at=night), now=night, subscriptions=quiet)
    assert {d["due_at"] for d in held if d["recipient"] == f"{LEAD}:head"} == {after_quiet}
    by_day = owed(urged(2))
    assert {(d["status"], d["due_at"]) for d in by_day} == {("pending", OFFICE_TIME)}, "in office hours, at once"


def test_level_2_reads_which_appeal_which_clock_how_long_overdue_and_cuiban():
    deliveries = owed(urged(2))
    own = mail_to(deliveries, f"{LEAD}:head")
    assert own["subject"] == f"催办：诉求 {APPEAL_ID} 办结时限已超时3天16小时"
    assert own["body"] == (
        f'{name(LEAD)}承办的诉求 {APPEAL_ID}"Loan due"的办结时限'
        "（截止时间 2026-11-20 18:00，延期前为 2026-11-17 18:00）"
        f"已超时3天16小时，仍未完成，现进入第2级督促（催办）。请{name(LEAD)}立即办理并答复。"
    )
    office = mail_to(deliveries, f"{OFFICE}:head")
    assert office["subject"] == own["subject"] and office["body"].endswith(f"请督促{name(LEAD)}办理。")


def test_level_3_reads_duban_in_english_when_subscribed_so():
    english = {
        f"{LEAD}:leadership": {"email": "lead.en@example.org", "language": "en"},
        CITY_SUPERVISOR: {"email": "city.en@example.org", "language": "en"},
    }
    deliveries = owed(urged(3, clock=ClockKind.response, original_due_at=None), subscriptions=english)
    own = mail_to(deliveries, f"{LEAD}:leadership")
    assert own["language"] == "en"
    assert own["subject"] == f"Supervision (督办): appeal {APPEAL_ID}'s first response time is 3 days 16 hours overdue"
    assert own["body"] == (
        f'The first response time of appeal {APPEAL_ID} "Loan due" held by {name(LEAD)} is 3 days 16 hours overdue '
        "(due at 2026-11-20 18:00) and still not done: it has reached level 3 of the urging ladder, supervision "
        f"(督办). {name(LEAD)} must act on it at once and answer."
    )
    city = mail_to(deliveries, CITY_SUPERVISOR)
    assert city["body"].endswith(f"Please press {name(LEAD)} to act on it.")
    chinese = mail_to(owed(urged(3)), CITY_SUPERVISOR)
    assert chinese["subject"].startswith("督办：") and "第3级督促（督办）" in chinese["body"]


@pytest.mark.parametrize(
    ("late", "zh", "en"),
    [
        (timedelta(days=1), "1天", "1 day"),
        (timedelta(days=2, hours=1, minutes=20), "2天1小时", "2 days 1 hour"),
        (timedelta(hours=5, minutes=59), "5小时", "5 hours"),
        (timedelta(minutes=42), "42分钟", "42 minutes"),
    ],
)
def test_how_long_overdue_is_counted_from_the_missed_due_time_to_the_level(late, zh, en):
    evt = urged(2, fired_at=MISSED + late)
    context = template_context(BOOK, evt, APPEAL, STATUS_URL)
    assert BOOK.renderer.render("sla_urged", "zh", context)[0].endswith(f"已超时{zh}")
    assert BOOK.renderer.render("sla_urged", "en", context)[0].endswith(f"is {en} overdue")


@pytest.mark.parametrize("language", rules.LANGUAGES)
@pytest.mark.parametrize("level", [2, 3])
def test_an_urging_level_reads_without_the_optional_fields(level, language):
    """No title (the submission not read yet), no extension, no due time: no 'None', empty brackets or quotes."""
    for missing in ({"original_due_at": None}, {"original_due_at": None, "due_at": None}):
        evt = urged(level, **missing)
        context = template_context(BOOK, evt, None, STATUS_URL)
        for own in (True, False):
            subject, body = BOOK.renderer.render("sla_urged", language, {**context, "own": own})
            text = subject + "\n" + body
            assert APPEAL_ID in subject and name(LEAD) in body
            assert "None" not in text and "()" not in text and "（）" not in text and '""' not in text
            assert "  " not in text and " overdue overdue" not in text and "：。" not in text


def test_a_replayed_urging_level_owes_the_same_deliveries_under_the_same_ids():
    evt = urged(3)
    first, again = owed(evt), owed(evt, now=OFFICE_TIME + timedelta(hours=1))
    assert [d["id"] for d in first] == [d["id"] for d in again]
    assert [d["body"] for d in first] == [d["body"] for d in again], "how long overdue is the event's, not the replay's"
    assert all(d["id"].startswith(f"{evt.id}:") for d in first), "the notice's insert refuses a second one"
    assert f"{evt.id}:{CITY_SUPERVISOR}:email" in {d["id"] for d in first}


def test_an_urging_level_packed_in_sla_reported_is_planned_under_its_own_id():
    evt = urged(3)
    [report] = unpacked([packed(evt)])
    assert (report.id, report.type) == (evt.id, E.sla_urged)
    assert [d["id"] for d in owed(report)] == [d["id"] for d in owed(evt)]


def test_planning_reads_the_offices_staff_for_an_urging_level():
    assert rules.departments_told(E.sla_urged, LEAD, CITY) == {LEAD, OFFICE}
    assert rules.departments_told(E.appeal_urged, LEAD, CITY) == {LEAD}
    assert "leadership" in rules.STAFF_ROLES


def test_urging_by_hand_tells_the_leads_handler_and_head_the_offices_note_and_who_urged():
    deliveries = owed(by_hand())
    assert told(deliveries) == {(f"{LEAD}:handler", "handler"), (f"{LEAD}:head", "head")}
    assert not any(d["urgent"] for d in deliveries) and "company" not in {d["recipient"] for d in deliveries}
    mail = mail_to(deliveries, f"{LEAD}:handler")
    assert mail["to"] == CITY.department(LEAD).handler.email and mail["template"] == "lead_urged"
    assert mail["subject"] == f"催办：诉求 {APPEAL_ID}"
    assert mail["body"] == (
        f'{name(OFFICE)}（Chen Wei）对{name(LEAD)}承办的诉求 {APPEAL_ID}"Loan due"发出催办。'
        f"要求：{NOTE} 请尽快办理并答复。"
    )
    english = {f"{LEAD}:head": {"email": "head.en@example.org", "language": "en"}}
    mail = mail_to(owed(by_hand(), subscriptions=english), f"{LEAD}:head")
    assert mail["subject"] == f"Appeal {APPEAL_ID} urged by {name(OFFICE)}"
    assert mail["body"] == (
        f'{name(OFFICE)} (Chen Wei) urges {name(LEAD)} on appeal {APPEAL_ID} "Loan due". It expects: {NOTE} '
        "Please act on it without delay and answer."
    )


def test_urging_by_hand_waits_for_office_hours():
    night = datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
    opening = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert {(d["status"], d["due_at"]) for d in owed(by_hand(), now=night)} == {("held", opening)}


@pytest.mark.parametrize("language", rules.LANGUAGES)
def test_urging_by_hand_reads_without_the_optional_fields(language):
    evt = by_hand(clerk=None, note=None)
    subject, body = BOOK.renderer.render("lead_urged", language, template_context(BOOK, evt, None, STATUS_URL))
    text = subject + "\n" + body
    assert APPEAL_ID in subject and name(LEAD) in body
    assert "None" not in text and "()" not in text and "（）" not in text and '""' not in text and "  " not in text


def config_copy(tmp_path):
    for path in CONFIG.iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_broken_supervision_file_stops_notify_at_start(tmp_path):
    config = config_copy(tmp_path)
    text = (config / "supervision.yaml").read_text(encoding="utf-8")
    (config / "supervision.yaml").write_text(text.replace("[head, coordinating_office_head]", "[head, mayor]"))
    with pytest.raises(ConfigError, match=r"supervision\.yaml: urging\.levels\[0\]\.audiences"):
        create_app(NotifySettings(config_dir=config))


def test_a_department_coded_city_stops_notify_at_start(tmp_path):
    """Its supervisor's recipient id would be the city supervisor's."""
    config = config_copy(tmp_path)
    raw = yaml.safe_load((config / "city.yaml").read_text(encoding="utf-8"))
    raw["departments"].append({**raw["departments"][-1], "code": "city"})
    (config / "city.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"departments\[\d+\] \(city\): code"):
        create_app(NotifySettings(config_dir=config))
