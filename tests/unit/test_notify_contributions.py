"""Co-handlers' contributions (协办意见) as notify plans them (services/notify/planning.py over rules.py): the lead's
handler told of each part, and each co-handler's own `contribution` clock, warned, breached and urged to its own
department, named as such in both languages."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from libs.calendars import load_calendars
from libs.config import load_city, load_registry_config, load_sla_config, load_supervision
from libs.envelopes import unpacked
from libs.events import AppealChanged, SlaClockChanged
from libs.kafka.publishing import make_event
from libs.kinds import AppealStatus, ClockKind, ClockState, EventType
from libs.settings import PROJECT_ROOT
from services.notify import rules
from services.notify.book import NotifyBook
from services.notify.planning import deliveries_owed, template_context
from services.sla.clocks import clock_id
from services.sla.service import threshold_event_id
from tests.helpers import packed

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
# LEAD leads; TAX and HRSS co-handle, each with its own contribution clock.
LEAD, TAX, HRSS, OFFICE = "futian-finance", "futian-tax", "futian-hrss", CITY.coordinating_office
SHANGHAI = ZoneInfo("Asia/Shanghai")
# A Tuesday at 10:00 in Shenzhen: the offices are open, so only quiet hours hold a staff notice.
OFFICE_TIME = datetime(2026, 11, 24, 10, 0, tzinfo=SHANGHAI).astimezone(UTC)
NIGHT = datetime(2026, 11, 24, 22, 0, tzinfo=SHANGHAI).astimezone(UTC)
OPENING = datetime(2026, 11, 25, 9, 0, tzinfo=SHANGHAI).astimezone(UTC)
# Both co-handlers joined at routing: their contribution clocks (3wd) ran out at the same instant.
DUE = datetime(2026, 11, 23, 18, 0, tzinfo=SHANGHAI).astimezone(UTC)
PART = "The deferral of the tax payment applies from December; the bureau has recorded it."
LINKS = ["https://files.example.org/deferral.pdf", "https://files.example.org/record.pdf"]
STATUS_URL = "https://web.example.org/appeals/{appeal_id}"
APPEAL_ID = "01JB8X4R5ZJ6Q8V2Y7K9M3N4P8"
APPEAL = {
    "_id": APPEAL_ID,
    "title": "Loan due",
    "company_name": "Lanhai",
    "category": "financing",
    "channel": "web",
    "submitted_at": datetime(2026, 11, 18, 2, 0, tzinfo=UTC),
    "contact": {"name": "Li Wei", "phone": "13800138000", "email": "liwei@example.com"},
    "follow_url": f"https://web.example.org/appeals/{APPEAL_ID}?t=token",
}


def name(code: str) -> str:
    return CITY.department(code).name


def contributed(at: datetime = OFFICE_TIME, **extra):
    """A co-handler's part as router publishes it (services/router/lifecycle.py): the department is the lead, the
    actor the co-handler; `extra` overrides (None leaves a field out)."""
    fields = {
        "status": AppealStatus.accepted,
        "actor": TAX,
        "clerk": "Wei Hao",
        "note": PART,
        "attachments": LINKS,
        **extra,
    }
    data = AppealChanged(
        appeal_id=APPEAL_ID,
        sequence=5,
        department=LEAD,
        cohandlers=[TAX, HRSS],
        category="financing",
        channel="web",
        district="futian",
        size_band="micro",
        sla_profile="coordinated_72h",
        submitted_at=APPEAL["submitted_at"],
        **{k: v for k, v in fields.items() if v is not None},
    )
    return make_event("appeals/router", E.appeal_contributed, APPEAL_ID, data, time=at)


def contribution_clock(
    type_: EventType, department: str, generation: int, level: int | None = None, urge_level: int | None = None
):
    """A co-handler's contribution clock as sla reports it, under the id sla derives from the clock and level (two
    co-handlers' clocks on one appeal are two generations of the kind)."""
    cid = clock_id(APPEAL_ID, ClockKind.contribution, generation)
    fired = DUE if level == 100 else OFFICE_TIME
    data = SlaClockChanged(
        appeal_id=APPEAL_ID,
        clock_id=cid,
        clock=ClockKind.contribution,
        department=department,
        state=ClockState.breached if level == 100 or urge_level else ClockState.running,
        level=level,
        target="3wd",
        calendar="default",
        sla_profile="coordinated_72h",
        started_at=APPEAL["submitted_at"],
        due_at=DUE,
        fired_at=fired,
        urge_level=urge_level,
    )
    kwargs = {"id": threshold_event_id(cid, level, DUE)} if level else {}
    return make_event("appeals/sla", type_, APPEAL_ID, data, time=fired, **kwargs)


def staff(subscriptions: dict[str, dict] | None = None) -> dict[str, rules.Address]:
    """Every department's staff planning may read here (config/city.yaml), under any subscription."""
    subs = subscriptions or {}
    people = {
        f"{code}:{role}": getattr(CITY.department(code), role)
        for code in (LEAD, TAX, HRSS, OFFICE)
        for role in rules.STAFF_ROLES
    }
    people[rules.CITY_SUPERVISOR] = CITY.city_supervisor
    return {recipient: rules.staff_address(person, subs.get(recipient)) for recipient, person in people.items()}


def owed(evt, now=OFFICE_TIME, subscriptions=None, appeal=APPEAL, liaison=None):
    """What an event owes; `liaison` the company's (id, address), read as planning reads it, among the staff."""
    people = staff(subscriptions) | ({f"liaison:{liaison[0]}": liaison[1]} if liaison else {})
    return deliveries_owed(BOOK, evt, appeal, people, now, STATUS_URL, liaison)


def mail_to(deliveries, recipient):
    [mail] = [d for d in deliveries if (d["recipient"], d["channel"]) == (recipient, "email")]
    return mail


def rendered(evt, template: str, language: str, appeal=APPEAL, **context) -> tuple[str, str]:
    return BOOK.renderer.render(template, language, {**template_context(BOOK, evt, appeal, STATUS_URL), **context})


def test_the_leads_handler_hears_of_a_contribution_and_nobody_else():
    deliveries = owed(contributed())
    assert {(d["recipient"], d["audience"], d["channel"]) for d in deliveries} == {
        (f"{LEAD}:handler", "handler", "email"),
        (f"{LEAD}:handler", "handler", "wechat"),
    }, "not the company, not the co-handler, not the office; no SMS"
    assert not any(d["urgent"] for d in deliveries)
    assert all(d["template"] == "lead_contributed" for d in deliveries)
    assert mail_to(deliveries, f"{LEAD}:handler")["to"] == CITY.department(LEAD).handler.email
    assert rules.departments_told(E.appeal_contributed, LEAD, CITY) == {LEAD}


def test_the_lead_reads_which_co_handler_who_the_part_and_the_links():
    mail = mail_to(owed(contributed()), f"{LEAD}:handler")
    assert mail["subject"] == f"{name(TAX)}提交了诉求 {APPEAL_ID} 的协办意见"
    assert mail["body"] == (
        f'{name(TAX)}（Wei Hao）作为协办部门，就{name(LEAD)}承办的诉求 {APPEAL_ID}"Loan due"提交了协办意见。\n'
        f"意见：{PART}\n"
        f"附件链接：\n{LINKS[0]}\n{LINKS[1]}"
    )


def test_the_lead_reads_a_contribution_in_english_when_subscribed_so():
    english = {f"{LEAD}:handler": {"email": "lead.en@example.org", "language": "en"}}
    mail = mail_to(owed(contributed(), subscriptions=english), f"{LEAD}:handler")
    assert (mail["language"], mail["to"]) == ("en", "lead.en@example.org")
    assert mail["subject"] == f"{name(TAX)} contributed its part to appeal {APPEAL_ID}"
    assert mail["body"] == (
        f'{name(TAX)} (Wei Hao), co-handling appeal {APPEAL_ID} "Loan due" led by {name(LEAD)}, contributed its part '
        f"of the answer.\nIts part: {PART}\nLinks:\n{LINKS[0]}\n{LINKS[1]}"
    )


@pytest.mark.parametrize("language", rules.LANGUAGES)
def test_a_contribution_reads_without_the_optional_fields(language):
    """No clerk, no links, no title (the submission not read yet), even no note or actor: no 'None', empty brackets
    or quotes, empty headings or doubled spaces."""
    for missing in (
        {"clerk": None, "attachments": []},
        {"clerk": None, "attachments": [], "note": None},
        {"clerk": None, "attachments": [], "note": None, "actor": None},
    ):
        subject, body = rendered(contributed(**missing), "lead_contributed", language, appeal=None)
        text = subject + "\n" + body
        assert APPEAL_ID in subject and name(LEAD) in body
        assert "None" not in text and "()" not in text and "（）" not in text and '""' not in text
        assert "  " not in text and "\n\n" not in text and not text.endswith(("：", ":"))
        assert "Links" not in text and "附件" not in text
        if "actor" not in missing:
            assert name(TAX) in subject
        if "note" not in missing:
            assert PART in body
        else:
            assert "意见：" not in body and "Its part" not in body


@pytest.mark.parametrize("language", rules.LANGUAGES)
def test_a_long_part_is_quoted_on_one_line_cut_and_marked_so(language):
    english = "The bureau looked at every payment.\n\n" + "It checked   each record again. " * 200
    chinese = "税务部门已核实全部缴税记录。" * 100
    for note in (english, chinese):
        subject, body = rendered(contributed(note=note), "lead_contributed", language)
        [line] = [
            x for x in body.splitlines() if x.startswith(("意见（节选，全文见工作台诉求页面）：", "Its part (abridged"))
        ]
        quoted = line.partition("：" if line.startswith("意见") else ": ")[2]
        assert len(quoted) <= rules.PART_QUOTED and quoted.endswith("…")
        assert "  " not in quoted and "\n" not in quoted
        assert " ".join(note.split()).startswith(quoted[:-1]), "the part's beginning, its whitespace made single"
    short, cut = rules.quoted(english)
    assert cut and " ".join(english.split()).startswith(short[:-1] + " "), "cut at a space: no word split"
    assert rules.quoted("  a part\n with lines ") == ("a part with lines", False)
    assert rules.quoted(None) == ("", False)


def test_only_https_links_are_shown():
    shown = contributed(attachments=[LINKS[0], "http://files.example.org/plain.pdf", "javascript:alert(1)"])
    body = mail_to(owed(shown), f"{LEAD}:handler")["body"]
    assert LINKS[0] in body and "plain.pdf" not in body and "javascript" not in body


@pytest.mark.parametrize("language", rules.LANGUAGES)
def test_a_part_that_comes_after_the_resolution_says_so(language):
    subject, body = rendered(contributed(status=AppealStatus.resolved), "lead_contributed", language)
    assert ("已办结" if language == "zh" else "after the appeal was resolved") in body
    _, before = rendered(contributed(), "lead_contributed", language)
    assert "已办结" not in before and "resolved" not in before


def test_a_contribution_waits_for_office_hours_or_the_leads_quiet_hours():
    assert {(d["status"], d["due_at"]) for d in owed(contributed(NIGHT), now=NIGHT)} == {("held", OPENING)}
    quiet = {f"{LEAD}:handler": {"email": "h@example.org", "quiet_hours": {"start": "12:00", "end": "14:00"}}}
    noon = datetime(2026, 11, 24, 12, 30, tzinfo=SHANGHAI).astimezone(UTC)
    two = datetime(2026, 11, 24, 14, 0, tzinfo=SHANGHAI).astimezone(UTC)
    assert {d["due_at"] for d in owed(contributed(noon), now=noon, subscriptions=quiet)} == {two}
    assert {(d["status"], d["due_at"]) for d in owed(contributed())} == {("pending", OFFICE_TIME)}


def test_a_replayed_contribution_owes_the_same_deliveries_under_the_same_ids():
    evt = contributed()
    first, again = owed(evt), owed(evt, now=OFFICE_TIME + timedelta(hours=1))
    assert [d["id"] for d in first] == [d["id"] for d in again]
    assert all(d["id"].startswith(f"{evt.id}:{LEAD}:handler:") for d in first)


def test_two_co_handlers_contribution_breaches_on_one_appeal_are_each_told_to_their_own_department():
    """Same appeal, same kind, same due time: two clocks, two events, each with its own notice and deliveries."""
    tax, hrss = (contribution_clock(E.sla_breached, code, n, level=100) for n, code in ((1, TAX), (2, HRSS)))
    assert tax.id != hrss.id
    for evt, code, other in ((tax, TAX, HRSS), (hrss, HRSS, TAX)):
        deliveries = owed(evt)
        assert {d["recipient"] for d in deliveries} == {f"{code}:{role}" for role in ("handler", "head", "supervisor")}
        assert not any(d["recipient"].startswith((f"{other}:", f"{LEAD}:")) for d in deliveries)
        assert {d["channel"] for d in deliveries} == {"email", "wechat", "sms"}, "a breach is urgent, as any"
    ids = [d["id"] for evt in (tax, hrss) for d in owed(evt)]
    assert len(ids) == len(set(ids))
    # sla may pack both into one report: each is planned under its own id.
    reports = unpacked([packed(tax, hrss)])
    assert [(r.id, r.data.department) for r in reports] == [(tax.id, TAX), (hrss.id, HRSS)]
    assert sorted(d["id"] for r in reports for d in owed(r)) == sorted(ids)


@pytest.mark.parametrize("level", [50, 80])
def test_a_contribution_warning_goes_to_the_co_handlers_people(level):
    evt = contribution_clock(E.sla_warning, HRSS, 2, level=level)
    roles = {50: {"handler"}, 80: {"handler", "head"}}[level]
    assert {d["recipient"] for d in owed(evt)} == {f"{HRSS}:{role}" for role in roles}
    mail = mail_to(owed(evt), f"{HRSS}:handler")
    assert mail["subject"] == f"时限预警：诉求 {APPEAL_ID} 协办意见时限已用去{level}%"
    assert mail["body"] == (
        f"{name(HRSS)}协办的诉求 {APPEAL_ID} 的协办意见时限（3wd）已用去{level}%，截止时间 2026-11-23 18:00。"
        "请按时向主办部门提交协办意见。"
    )
    english = mail_to(
        owed(evt, subscriptions={f"{HRSS}:handler": {"email": "x@example.org", "language": "en"}}), f"{HRSS}:handler"
    )
    assert english["subject"] == f"SLA warning: appeal {APPEAL_ID} at {level}% of its contribution time"
    assert english["body"] == (
        f"The contribution (your part as co-handler) clock of appeal {APPEAL_ID} held by {name(HRSS)} has used "
        f"{level}% of its target 3wd; it is due at 2026-11-23 18:00. Send the lead department your part in time."
    )


def test_a_contribution_breach_names_the_clock_in_both_languages():
    evt = contribution_clock(E.sla_breached, TAX, 1, level=100)
    zh = mail_to(owed(evt), f"{TAX}:supervisor")
    assert zh["subject"] == f"超时警告：诉求 {APPEAL_ID}（协办意见）已超时"
    assert zh["body"] == (
        f"{name(TAX)}作为协办部门，未在协办意见时限（3wd）内就诉求 {APPEAL_ID} 向主办部门提交协办意见，"
        "截止时间 2026-11-23 18:00。该超时计入部门考核。"
    )
    en = mail_to(owed(evt, subscriptions={f"{TAX}:head": {"email": "h@example.org", "language": "en"}}), f"{TAX}:head")
    assert en["subject"] == f"SLA BREACHED: appeal {APPEAL_ID} (contribution)"
    assert en["body"] == (
        f"{name(TAX)} missed the contribution (your part as co-handler) target 3wd of appeal {APPEAL_ID}, due at "
        "2026-11-23 18:00. The breach counts against the department."
    )


def test_the_companys_liaison_reads_a_contribution_breach_as_a_co_handlers_part():
    liaison = ("l-1", rules.Address(email="liaison@example.org", language="en"))
    evt = contribution_clock(E.sla_breached, TAX, 1, level=100)
    mail = mail_to(owed(evt, liaison=liaison), "liaison:l-1")
    assert "contribution (a co-handler's part) target 3wd" in mail["body"] and "your part" not in mail["body"]
    zh = mail_to(owed(evt, liaison=("l-1", rules.Address(email="liaison@example.org"))), "liaison:l-1")
    assert f"协办部门{name(TAX)}未在协办意见时限（3wd）内向主办部门提交协办意见" in zh["body"]


def test_an_urged_contribution_names_the_clock_and_asks_for_the_part():
    evt = contribution_clock(E.sla_urged, TAX, 1, urge_level=2)
    deliveries = owed(evt)
    assert {d["recipient"] for d in deliveries} == {f"{TAX}:head", f"{OFFICE}:head"}
    own, office = mail_to(deliveries, f"{TAX}:head"), mail_to(deliveries, f"{OFFICE}:head")
    assert own["subject"] == f"催办：诉求 {APPEAL_ID} 协办意见时限已超时16小时"
    assert f"{name(TAX)}协办的诉求 {APPEAL_ID}" in own["body"] and "的协办意见时限（截止时间" in own["body"]
    assert own["body"].endswith(f"请{name(TAX)}立即向主办部门提交协办意见。")
    assert office["body"].endswith(f"请督促{name(TAX)}提交协办意见。")
    context = template_context(BOOK, evt, APPEAL, STATUS_URL)
    subject, body = BOOK.renderer.render("sla_urged", "en", context)
    assert subject == f"Urging (催办): appeal {APPEAL_ID}'s contribution time is 16 hours overdue"
    assert body.startswith(f"The contribution (your part as co-handler) time of appeal {APPEAL_ID}")
    assert body.endswith(f"{name(TAX)} must send the lead department its part at once.")
    _, pressed = BOOK.renderer.render("sla_urged", "en", {**context, "own": False})
    assert pressed.startswith("The contribution (a co-handler's part) time")
    assert pressed.endswith(f"Please press {name(TAX)} to send its part.")


@pytest.mark.parametrize("language", rules.LANGUAGES)
def test_every_clock_kind_has_a_name_in_every_language(language):
    names = {kind: rules.clock_name(kind, language) for kind in ClockKind}
    if language == "zh":
        assert not any(names[kind] == kind.value for kind in ClockKind), "a Chinese text names no clock by its code"
    assert len(set(names.values())) == len(ClockKind), "no two kinds read alike"
    assert set(rules.CLOCK_NAMES[language]) == {kind.value for kind in ClockKind}
    assert (
        rules.clock_name("contribution", "zh") == "协办意见"
        and rules.clock_name("contribution", "en") == "contribution"
    )
    assert rules.clock_name("contribution", "en", own=True) == "contribution (your part as co-handler)"
    assert rules.clock_name("resolution", "en", own=False) == "resolution"


@pytest.mark.parametrize("language", rules.LANGUAGES)
@pytest.mark.parametrize("kind", list(ClockKind))
@pytest.mark.parametrize(
    ("type_", "template", "extra"),
    [
        (E.sla_warning, "sla_warning", {"level": 80}),
        (E.sla_breached, "sla_breached", {"level": 100}),
        (E.sla_breached, "liaison_breached", {"level": 100, "own": False}),
        (E.sla_urged, "sla_urged", {"urge_level": 3}),
    ],
)
def test_every_text_that_shows_a_clock_names_it(kind, type_, template, extra, language):
    """Each kind by its name in the recipient's language, never by its code (but where the code is the name)."""
    data = SlaClockChanged(
        appeal_id=APPEAL_ID,
        clock_id=clock_id(APPEAL_ID, kind, 1),
        clock=kind,
        department=TAX,
        state=ClockState.breached,
        target="3wd",
        calendar="default",
        sla_profile="coordinated_72h",
        started_at=APPEAL["submitted_at"],
        due_at=DUE,
        fired_at=OFFICE_TIME,
        level=extra.get("level"),
        urge_level=extra.get("urge_level"),
    )
    evt = make_event("appeals/sla", type_, APPEAL_ID, data, time=OFFICE_TIME)
    own = extra.get("own", True)
    subject, body = rendered(evt, template, language, own=own)
    assert rules.clock_name(kind, language, own) in body
    if template != "liaison_breached":
        assert rules.clock_name(kind, language) in subject
    if language == "zh":
        assert kind.value not in subject + body
    assert "None" not in subject + body and "  " not in subject + body
