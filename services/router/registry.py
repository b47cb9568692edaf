"""The enterprise registry's rules, as plain functions: reading a government list's CSV, what an import or an
edit changes, and which lists (and so which flags) a company is on (docs/domain.md, "Enterprises").

A company is a document keyed by its credit code: profile, contact phones, liaison and memberships
`{list, since, until, source}`, with `since` and `until` as local dates (`until` excluded; none while
the company is on the list). Only memberships give flags.
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from libs import phones
from libs.config import City, RegistryConfig
from libs.uscc import uscc_problem

# Column headers a government file may use for each field, English or Chinese.
COLUMNS: dict[str, tuple[str, ...]] = {
    "uscc": ("uscc", "credit_code", "统一社会信用代码"),
    "name": ("name", "企业名称"),
    "district": ("district", "所在区"),
    "industry": ("industry", "行业"),
    "phone": ("phone", "联系电话"),
    "liaison": ("liaison", "联络员"),
}
REQUIRED = ("uscc", "name")
PROFILE = ("name", "district", "industry", "phones", "liaison")


class UnreadableFile(ValueError):
    """A file the registry cannot read at all; nothing of it is imported."""


@dataclass(frozen=True)
class ListedCompany:
    """One readable row of a list: a company with what the file says about it."""

    line: int
    uscc: str
    name: str
    district: str | None = None
    industry: str | None = None
    phone: str | None = None
    liaison: str | None = None


@dataclass(frozen=True)
class Refused:
    """A row not imported, with its line in the file and why."""

    line: int
    reason: str


def read_list(data: bytes, city: City, registry: RegistryConfig) -> tuple[list[ListedCompany], list[Refused]]:
    """The companies of a list file (UTF-8 CSV, BOM allowed) and the rows refused; UnreadableFile if unreadable."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"the file is not UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "save it as UTF-8 (a GBK or GB2312 export is not read)"
        ) from None
    # Universal newlines: a lone CR ends a line as in files of old Macs' tools; the csv module refused it (a 500).
    reader = csv.DictReader(io.StringIO(text, newline=None))
    try:
        return _read_rows(reader, city, registry)
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num}: {exc}") from None


def _read_rows(
    reader: "csv.DictReader[str]", city: City, registry: RegistryConfig
) -> tuple[list[ListedCompany], list[Refused]]:
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise UnreadableFile("the file is empty: it needs a header row naming the columns")
    where = {key: next((h for h in header if h.casefold() in names), None) for key, names in COLUMNS.items()}
    missing = [f"{key} ({' or '.join(COLUMNS[key])})" for key in REQUIRED if where[key] is None]
    if missing:
        raise UnreadableFile(f"missing columns: {', '.join(missing)}; the header has {', '.join(header)}")
    districts = {d.code for d in city.districts}
    rows: list[ListedCompany] = []
    refused: list[Refused] = []
    first_line: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        values = {key: (raw.get(column) or "").strip() if column else "" for key, column in where.items()}
        reason = _row_problem(values, districts, registry)
        uscc = values["uscc"].upper()
        if reason is None and uscc in first_line:
            reason = f"repeats the company of line {first_line[uscc]}"
        if reason is not None:
            refused.append(Refused(line, reason))
            continue
        first_line[uscc] = line
        rows.append(
            ListedCompany(
                line,
                uscc,
                values["name"],
                values["district"] or None,
                values["industry"] or None,
                values["phone"] or None,
                values["liaison"] or None,
            )
        )
    return rows, refused


def _row_problem(values: dict[str, str], districts: set[str], registry: RegistryConfig) -> str | None:
    if not values["uscc"]:
        return "no credit code"
    problem = uscc_problem(values["uscc"].upper())
    if problem:
        return f"credit code {problem}"
    if not values["name"]:
        return "no company name"
    if values["district"] and values["district"] not in districts:
        return f"unknown district {values['district']!r}; known: {', '.join(sorted(districts))}"
    if values["phone"] and not _phone_ok(values["phone"]):
        return "phone is not a phone number"
    if values["liaison"] and registry.find_liaison(values["liaison"]) is None:
        return f"unknown liaison {values['liaison']!r}"
    return None


def _phone_ok(phone: str) -> bool:
    digits = phone.replace(" ", "").replace("-", "").removeprefix("+")
    return digits.isdigit() and 6 <= len(digits) <= 20


def active(membership: dict[str, Any], on: date) -> bool:
    """Whether a membership holds on a day: from `since`, up to but not including `until`."""
    since = date.fromisoformat(membership["since"])
    until = membership.get("until")
    return since <= on and (until is None or on < date.fromisoformat(until))


def lists_on(company: dict[str, Any] | None, on: date) -> list[str]:
    """The lists a company is on, on a day (none for a company the registry does not know)."""
    if company is None:
        return []
    return sorted({m["list"] for m in company.get("memberships", []) if active(m, on)})


def flags_of(lists: list[str], registry: RegistryConfig) -> dict[str, str]:
    """The flags these lists give, each with the list that gives it."""
    out = {}
    for list_id in lists:
        entry = registry.find_list(list_id)
        if entry is not None:
            out[entry.flag] = list_id
    return out


def phone_matches(company: dict[str, Any] | None, phone: str) -> bool | None:
    """Whether an appeal's contact phone is one the registry has for the company; None when it has none.

    Both sides in E.164 (intake sends the contact's so; a government list writes `138 0013 8000`,
    `+86-138…` or `0086…`), so one number matches whatever its form.
    """
    if company is None or not company.get("phones"):
        return None
    return _e164(phone) in {_e164(p) for p in company["phones"]}


def _e164(phone: str) -> str:
    """The phone in E.164; one that is no valid number (the registry takes any 6 to 20 digits) as its digits."""
    try:
        return phones.e164(phone)
    except ValueError:
        return "".join(ch for ch in phone if ch.isdigit())


@dataclass
class Change:
    """What one company's document becomes: the document after, and each field that changed (before, after)."""

    uscc: str
    before: dict[str, Any] | None
    after: dict[str, Any]
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def new_company(uscc: str, name: str) -> dict[str, Any]:
    """A company the registry has not known before."""
    return {
        "_id": uscc,
        "name": name,
        "district": None,
        "industry": None,
        "phones": [],
        "liaison": None,
        "memberships": [],
        "version": 0,
    }


def _diff(before: dict[str, Any] | None, after: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    old = before or {}
    return {key: (old.get(key), after[key]) for key in (*PROFILE, "memberships") if old.get(key) != after.get(key)}


def plan_import(
    list_id: str, as_of: date, rows: list[ListedCompany], known: dict[str, dict[str, Any]], source: str
) -> list[Change]:
    """What importing a list as of a day changes: each listed company registered or updated and on the list
    from that day, each company no longer listed off it from that day. `known` holds the registry's
    documents of the file's companies and of the list's current members. Unchanged companies are left out.
    """
    day = as_of.isoformat()
    changes = []
    listed = set()
    for row in rows:
        listed.add(row.uscc)
        before = known.get(row.uscc)
        after = _copy(before) if before else new_company(row.uscc, row.name)
        after["name"] = row.name
        for key in ("district", "industry", "liaison"):
            value = getattr(row, key)
            if value:
                after[key] = value
        if row.phone and row.phone not in after["phones"]:
            after["phones"] = [*after["phones"], row.phone]
        if not any(m["list"] == list_id and m.get("until") is None for m in after["memberships"]):
            after["memberships"] = [
                *after["memberships"],
                {"list": list_id, "since": day, "until": None, "source": source},
            ]
        fields = _diff(before, after)
        if fields:
            changes.append(Change(row.uscc, before, after, fields))
    for uscc, before in known.items():
        if uscc in listed:
            continue
        after = _copy(before)
        after["memberships"] = [
            {**m, "until": day} if m["list"] == list_id and m.get("until") is None else m for m in after["memberships"]
        ]
        fields = _diff(before, after)
        if fields:
            changes.append(Change(uscc, before, after, fields))
    return changes


def plan_edit(uscc: str, before: dict[str, Any] | None, edit: dict[str, Any]) -> Change | None:
    """What an admin's edit of one company changes (`edit` holds the fields given); None when nothing does."""
    after = _copy(before) if before else new_company(uscc, edit.get("name") or "")
    for key, value in edit.items():
        after[key] = value
    fields = _diff(before, after)
    return Change(uscc, before, after, fields) if fields else None


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    return {**doc, "phones": list(doc.get("phones", [])), "memberships": [dict(m) for m in doc.get("memberships", [])]}
