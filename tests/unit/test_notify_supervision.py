"""Send-back and transfer notices (退单, 转办) as notify plans them (services/notify/planning.py over rules.py): who
hears what the coordinating office is asked and decides, and what they read."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.calendars import load_calendars
from libs.config import load_city, load_registry_config, load_sla_config, load_supervision
from libs.events import AppealChanged
from libs.kafka.publishing import make_event
from libs.kinds import AppealStatus, EventType
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
# DECLINER sent the appeal back and it went to OTHER; an overrule returns it to DECLINER and withdraws it from OTHER.
DECLINER, OTHER, OFFICE = "futian-finance", "futian-tax", CITY.coordinating_office
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Tuesday at 10:00 in Shenzhen: the offices are open, so only quiet hours hold a staff notice.
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
FIRST_ASSIGNED = datetime(2026, 11, 24, 1, 30, tzinfo=UTC)  # 09:30 in Shenzhen
GUIDANCE = "Deferral of a tax payment is the tax bureau's matter"
REASON = "The loan is a tax-backed credit; the tax service decides"
COMMENT = "The loan is yours to decide"
STATUS_URL = "https://web.example.org/appeals/{appeal_id}"
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P6"
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


def name(code: str) -> str:
    return CITY.department(code).name


# What router puts on each event (services/router/lifecycle.py, office.py): the department is the lead the event
# names, the decliner's for a decline, the one the appeal returns to for an overrule.
AS_ROUTER_SENDS = {
    E.appeal_declined: {
        "status": AppealStatus.declined,
        "department": DECLINER,
        "actor": DECLINER,
        "clerk": "Tan Bo",
        "guidance": GUIDANCE,
        "chosen": False,
        "target_department": OTHER,
    },
    E.appeal_transfer_requested: {
        "status": AppealStatus.accepted,
        "department": DECLINER,
        "actor": DECLINER,
        "clerk": "Tan Bo",
        "reason": REASON,
        "target_department": OTHER,
    },
    E.appeal_transfer_refused: {
        "status": AppealStatus.accepted,
        "department": DECLINER,
        "actor": OFFICE,
        "clerk": "Chen Wei",
        "note": COMMENT,
        "target_department": OTHER,
    },
    E.appeal_decline_overruled: {
        "status": AppealStatus.routed,
        "department": DECLINER,
        "previous_department": OTHER,
        "actor": OFFICE,
        "clerk": "Chen Wei",
        "note": COMMENT,
        "since": FIRST_ASSIGNED,
    },
    E.appeal_decline_confirmed: {
        "status": AppealStatus.routed,
        "department": OTHER,
        "actor": OFFICE,
        "clerk": "Chen Wei",
        "note": "The send-back stands",
    },
}


def event(type_: EventType, **extra):
    """A supervision event as router publishes it; `extra` overrides (None leaves a field out)."""
    fields = {**AS_ROUTER_SENDS[type_], **extra}
    data = AppealChanged(
        appeal_id=APPEAL_ID,
        sequence=5,
        category="financing",
        channel="web",
        district="futian",
        size_band="micro",
        sla_profile="standard_72h",
        submitted_at=APPEAL["submitted_at"],
        **fields,
    )
    return make_event("appeals/router", type_, APPEAL_ID, data, time=OFFICE_TIME)


def staff(subscriptions: dict[str, dict] | None = None) -> dict[str, rules.Address]:
    """Both departments' and the office's staff as planning reads them: config/city.yaml, under any subscription."""
    subs = subscriptions or {}
    return {
        f"{code}:{role}": rules.staff_address(getattr(CITY.department(code), role), subs.get(f"{code}:{role}"))
        for code in (DECLINER, OTHER, OFFICE)
        for role in ("handler", "head", "supervisor")
    }


def owed(evt, now=OFFICE_TIME, subscriptions=None):
    return deliveries_owed(BOOK, evt, APPEAL, staff(subscriptions), now, STATUS_URL)


def staff_mail(deliveries, recipient):
    [mail] = [d for d in deliveries if (d["recipient"], d["channel"]) == (recipient, "email")]
    return mail


def on_staff_channels(*recipients):
    return {(r, ch) for r in recipients for ch in ("email", "wechat")}


@pytest.mark.parametrize(
    ("type_", "extra", "told"),
    [
        pytest.param(
            E.appeal_declined,
            {},
            on_staff_channels(f"{OFFICE}:handler") | {("company", "sms"), ("company", "email")},
            id="a send-back: the office's handler, and the company its guidance as before",
        ),
        pytest.param(
            E.appeal_declined,
            {"chosen": True},
            {("company", "sms"), ("company", "email")},
            id="the chosen department's decline: routing's first step, not the office's to review",
        ),
        pytest.param(
            E.appeal_declined,
            {"chosen": None},
            {("company", "sms"), ("company", "email")},
            id="a decline from before router said which",
        ),
        pytest.param(E.appeal_transfer_requested, {}, on_staff_channels(f"{OFFICE}:handler"), id="a transfer request"),
        pytest.param(E.appeal_transfer_refused, {}, on_staff_channels(f"{DECLINER}:handler"), id="a refusal"),
        pytest.param(
            E.appeal_decline_overruled,
            {},
            on_staff_channels(f"{DECLINER}:handler", f"{DECLINER}:head", f"{OTHER}:handler"),
            id="an overrule: the department it returns to, and the one withdrawn; not the company",
        ),
        pytest.param(E.appeal_decline_confirmed, {}, set(), id="a confirmed send-back: nobody"),
    ],
)
def test_who_hears_of_a_send_back_or_a_transfer(type_, extra, told):
    deliveries = owed(event(type_, **extra))
    assert sorted((d["recipient"], d["channel"]) for d in deliveries) == sorted(told), "each of them once"
    assert not any(d["urgent"] for d in deliveries), "SMS to staff is for breaches only"


def test_the_office_hears_of_a_send_back_who_sent_it_with_the_guidance_and_where_it_went():
    mail = staff_mail(owed(event(E.appeal_declined)), f"{OFFICE}:handler")
    assert mail["to"] == CITY.department(OFFICE).handler.email
    assert mail["template"] == "office_send_back"
    assert mail["subject"] == f"{name(DECLINER)}退回诉求 {APPEAL_ID}"
    assert mail["body"].startswith(f'{name(DECLINER)}（Tan Bo）退回了诉求 {APPEAL_ID}"Loan due"。')
    assert f"办理指引：{GUIDANCE}" in mail["body"] and f"诉求已转{name(OTHER)}办理。" in mail["body"]


def test_the_office_reads_a_send_back_in_english_when_it_subscribed_so():
    english = {f"{OFFICE}:handler": {"email": "office.en@example.org", "language": "en"}}
    mail = staff_mail(owed(event(E.appeal_declined), subscriptions=english), f"{OFFICE}:handler")
    assert (mail["language"], mail["to"]) == ("en", "office.en@example.org")
    assert mail["subject"] == f"{name(DECLINER)} sent appeal {APPEAL_ID} back"
    assert f"Its guidance: {GUIDANCE}" in mail["body"] and f"The appeal went to {name(OTHER)}." in mail["body"]
    assert mail["body"].endswith(f"let it stand, or return the appeal to {name(DECLINER)}.")


def test_a_send_back_that_does_not_say_where_it_went_tells_the_office_it_was_routed_on():
    """Router's decline names the department that declined; where the appeal went only when it carries it."""
    mail = staff_mail(owed(event(E.appeal_declined, target_department=None)), f"{OFFICE}:handler")
    assert "诉求已重新分派。" in mail["body"] and name(OTHER) not in mail["body"]


def test_the_office_hears_of_a_transfer_request_what_why_and_the_department_suggested():
    mail = staff_mail(owed(event(E.appeal_transfer_requested)), f"{OFFICE}:handler")
    assert mail["template"] == "office_transfer_requested"
    assert mail["subject"] == f"{name(DECLINER)}申请转办诉求 {APPEAL_ID}"
    assert f"建议转{name(OTHER)}办理，理由：{REASON}" in mail["body"] and "Tan Bo" in mail["body"]
    english = {f"{OFFICE}:handler": {"email": "office.en@example.org", "language": "en"}}
    mail = staff_mail(owed(event(E.appeal_transfer_requested), subscriptions=english), f"{OFFICE}:handler")
    assert f'asks to move appeal {APPEAL_ID} "Loan due" to {name(OTHER)} because: {REASON}' in mail["body"]


def test_the_lead_hears_of_a_refused_transfer_with_the_offices_comment():
    deliveries = owed(event(E.appeal_transfer_refused))
    mail = staff_mail(deliveries, f"{DECLINER}:handler")
    assert mail["template"] == "lead_transfer_refused"
    assert mail["subject"] == f"诉求 {APPEAL_ID} 转办申请未获同意"
    assert f"（申请转{name(OTHER)}），诉求仍由{name(DECLINER)}办理。意见：{COMMENT}" in mail["body"]
    assert not [d for d in deliveries if d["recipient"].startswith(f"{OTHER}:")], "the department asked for is not"


def test_the_department_an_overrule_returns_the_appeal_to_hears_the_comment_and_that_it_can_no_longer_decline():
    deliveries = owed(event(E.appeal_decline_overruled))
    for recipient in (f"{DECLINER}:handler", f"{DECLINER}:head"):
        mail = staff_mail(deliveries, recipient)
        assert mail["to"] == getattr(CITY.department(DECLINER), recipient.split(":")[1]).email
        assert mail["template"] == "lead_decline_overruled"
        assert mail["subject"] == f"诉求 {APPEAL_ID} 退单未获认可，退回{name(DECLINER)}办理"
        assert f"意见：{COMMENT}" in mail["body"] and "不能再退回该诉求，也不能自行转办" in mail["body"]
        assert "答复时限自首次分派（2026-11-24 09:30）起算" in mail["body"], "in the city's time"
    english = {f"{DECLINER}:handler": {"email": "lead.en@example.org", "language": "en"}}
    mail = staff_mail(owed(event(E.appeal_decline_overruled), subscriptions=english), f"{DECLINER}:handler")
    assert mail["subject"] == f"Appeal {APPEAL_ID} returned to {name(DECLINER)}"
    assert f"Comment: {COMMENT}" in mail["body"]
    assert f"{name(DECLINER)} can no longer decline the appeal or transfer it on its own" in mail["body"]


def test_the_department_an_overrule_withdraws_the_appeal_from_hears_it_is_no_longer_its_own():
    deliveries = owed(event(E.appeal_decline_overruled))
    mail = staff_mail(deliveries, f"{OTHER}:handler")
    assert mail["to"] == CITY.department(OTHER).handler.email
    assert mail["template"] == "withdrawn_decline_overruled"
    assert mail["subject"] == f"诉求 {APPEAL_ID} 已从{name(OTHER)}撤回"
    assert f"退回原退单部门{name(DECLINER)}办理" in mail["body"] and "不计入考核" in mail["body"]
    assert COMMENT not in mail["body"], "the comment is for the department that declined"
    english = {f"{OTHER}:handler": {"email": "other.en@example.org", "language": "en"}}
    mail = staff_mail(owed(event(E.appeal_decline_overruled), subscriptions=english), f"{OTHER}:handler")
    assert mail["subject"] == f"Appeal {APPEAL_ID} withdrawn from {name(OTHER)}"
    assert f"it is withdrawn from {name(OTHER)}, which need do nothing more on it" in mail["body"]
    assert not [d for d in deliveries if d["recipient"] in (f"{OTHER}:head", f"{OTHER}:supervisor")]


def test_an_overrule_without_the_department_withdrawn_tells_only_the_department_it_returns_to():
    deliveries = owed(event(E.appeal_decline_overruled, previous_department=None))
    assert {d["recipient"] for d in deliveries} == {f"{DECLINER}:handler", f"{DECLINER}:head"}


def test_supervision_notices_wait_for_office_hours_or_the_recipients_quiet_hours():
    night = datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
    opening = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
    for type_ in (E.appeal_transfer_requested, E.appeal_transfer_refused, E.appeal_decline_overruled):
        assert {(d["status"], d["due_at"]) for d in owed(event(type_), now=night)} == {("held", opening)}, type_
    sent_back = owed(event(E.appeal_declined), now=night)
    assert {(d["audience"], d["status"]) for d in sent_back} == {("company", "pending"), ("handler", "held")}
    quiet = {f"{OFFICE}:handler": {"quiet_hours": {"start": "20:00", "end": "07:30"}}}
    after_quiet = datetime(2026, 11, 25, 7, 30, tzinfo=SHANGHAI).astimezone(UTC)
    held = owed(event(E.appeal_declined), now=night, subscriptions=quiet)
    assert {d["due_at"] for d in held if d["audience"] == "handler"} == {after_quiet}


def test_a_replayed_overrule_owes_the_same_deliveries_under_the_same_ids():
    evt = event(E.appeal_decline_overruled)
    assert [d["id"] for d in owed(evt)] == [d["id"] for d in owed(evt, now=OFFICE_TIME + timedelta(hours=1))]
    assert all(d["id"].startswith(f"{evt.id}:") for d in owed(evt)), "the notice's insert refuses a second one"


def test_planning_reads_the_staff_of_every_department_told():
    told = rules.departments_told
    assert told(E.appeal_declined, DECLINER, CITY) == {DECLINER, OFFICE}
    assert told(E.appeal_transfer_requested, DECLINER, CITY) == {DECLINER, OFFICE}
    assert told(E.appeal_transfer_refused, DECLINER, CITY) == {DECLINER}
    assert told(E.appeal_decline_overruled, DECLINER, CITY, OTHER) == {DECLINER, OTHER}
    assert told(E.appeal_decline_overruled, DECLINER, CITY) == {DECLINER}
    assert told(E.appeal_decline_confirmed, OTHER, CITY, DECLINER) == {OTHER}


@pytest.mark.parametrize("language", rules.LANGUAGES)
@pytest.mark.parametrize(
    ("type_", "template"),
    [
        (E.appeal_declined, "office_send_back"),
        (E.appeal_transfer_requested, "office_transfer_requested"),
        (E.appeal_transfer_refused, "lead_transfer_refused"),
        (E.appeal_decline_overruled, "lead_decline_overruled"),
        (E.appeal_decline_overruled, "withdrawn_decline_overruled"),
    ],
)
def test_a_supervision_notice_reads_without_the_optional_fields(type_, template, language):
    """A clerk, a comment, a guidance, a reason, the department suggested or gone to, or the first assignment missing
    from an event leaves no 'None', empty brackets or quotes, or doubled spaces in the text."""
    missing = {"clerk": None, "note": None, "guidance": None, "reason": None, "target_department": None, "since": None}
    if template != "withdrawn_decline_overruled":  # without the department withdrawn, that one is not sent
        missing["previous_department"] = None
    evt = event(type_, **missing)
    subject, body = BOOK.renderer.render(template, language, template_context(BOOK, evt, APPEAL, STATUS_URL))
    text = subject + "\n" + body
    assert APPEAL_ID in subject and name(DECLINER) in text
    assert "None" not in text and "()" not in text and "（）" not in text and "  " not in text
    assert "：。" not in text and ": ." not in text and "，。" not in text
