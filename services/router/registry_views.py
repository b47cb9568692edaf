"""Router's HTTP surface for the enterprise registry: government lists, companies, their audit trail."""

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from starlette.convertors import Convertor, register_url_convertor

from libs.deadlines import deadlines
from libs.http import problem_responses
from libs.paging import Key, Pager, page_of, paged_responses, pager
from libs.uscc import USCC_SCHEMA, normalized_uscc
from libs.wire import Day
from services.router import registry, registry_store, service
from services.router.callers import AdminCaller, OperatorCaller, RegistryReader
from services.router.models import (
    AppealRecord,
    AuditEntry,
    EnterpriseIn,
    EnterpriseOut,
    ImportResult,
    ListOut,
    MembershipIn,
    RefusedRow,
)
from services.router.runtime import RouterRuntime, RouterRuntimeDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

REGISTRY_PROBLEMS = problem_responses(
    {
        401: "No valid API key",
        403: "Not an admin key, or a liaison key for another liaison's company",
        404: "No such company or list",
        409: "The company changed meanwhile; read it again",
        422: "Invalid credit code, field or file",
    }
)
MAX_LIST_BYTES = 8_000_000


def uscc_of(uscc: str) -> str:
    try:
        return normalized_uscc(uscc)
    except ValueError as exc:
        raise HTTPException(422, f"uscc: {exc}") from None


# A company's credit code in a path, as the OpenAPI document states it (libs/uscc.py). Its routes take a segment of
# 18 characters or more (`{uscc:uscc}`), so that /v1/enterprises/import is no company's: a PUT there is a 405.
Uscc = Annotated[str, PathParam(json_schema_extra=USCC_SCHEMA)]


class UsccSegment(Convertor[str]):
    regex = "[^/]{18,}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("uscc", UsccSegment())

# The list file as the OpenAPI document states it: UTF-8 text whose first line names the two columns every file
# needs. Any order and case and more columns (district, industry, phone, liaison) are read as well.
LIST_FILE = {
    "type": "string",
    "minLength": 1,
    "pattern": "^\\ufeff?(?:uscc|统一社会信用代码),(?:name|企业名称)(?:,[^\\r\\n]*)?(?:[\\r\\n][\\s\\S]*)?$",
    "description": "A UTF-8 CSV file (a BOM is allowed) whose header row names the columns uscc (统一社会信用代码) and "
    "name (企业名称), in any order and case, with district, industry, phone and liaison if wanted; a field of more "
    "than 131,072 characters makes it unreadable (422).",
}


@router.get(
    "/lists",
    tags=["registry"],
    response_model=list[ListOut],
    responses={**REGISTRY_PROBLEMS, **paged_responses("A page of the lists")},
    summary="The government lists the registry keeps",
)
async def government_lists(
    runtime: RouterRuntimeDep, _: OperatorCaller, page: Annotated[Pager, pager(default=100, maximum=500)]
) -> list[ListOut]:
    """Each list with the flag its companies get and how many are on it today, in the order of
    config/registry.yaml; a `Link` header leads to the next page while there is one."""
    listed = list(enumerate(runtime.book.registry.lists))
    chosen, more = page_of(listed, _position_key, page.after("lists", int, str), page.limit)
    out = []
    for _position, entry in page.link("lists", chosen, more, _position_key):
        on = await registry_store.members(runtime.db, entry.id)
        out.append(ListOut(**entry.model_dump(exclude={"name_zh"}), name_zh=entry.name_zh, members=len(on)))
    return out


def _position_key(item: tuple[int, Any]) -> Key:
    return (item[0], item[1].id)


@router.post(
    "/enterprises/import",
    tags=["registry"],
    response_model=ImportResult,
    responses=REGISTRY_PROBLEMS,
    summary="Import a government list as it stands on a day (CSV, UTF-8)",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": LIST_FILE}}}},
)
async def import_list(
    request: Request,
    runtime: RouterRuntimeDep,
    principal: AdminCaller,
    list_id: Annotated[str, Query(alias="list", max_length=64, description="List id (GET /v1/lists).")],
    as_of: Annotated[Day, Query(description="The day the file's list holds from.")],
) -> ImportResult:
    """The file is the whole list on `as_of`: companies in it are on the list from that day, companies on it
    before and missing now are off it from that day. Columns: uscc (统一社会信用代码) and name (企业名称) required;
    district, industry, phone, liaison optional. Importing the same file again changes nothing. A file that cannot
    be read imports nothing; a readable one imports its good rows and names every refused row."""
    book = runtime.book
    if book.registry.find_list(list_id) is None:
        raise HTTPException(404, f"no list {list_id!r}; known: {', '.join(e.id for e in book.registry.lists)}")
    data = await request.body()
    try:
        rows, refused = registry.read_list(data, book.city, book.registry)
    except registry.UnreadableFile as exc:
        raise HTTPException(422, f"file: {exc}") from None
    known = await registry_store.companies(runtime.db, (row.uscc for row in rows))
    known |= await registry_store.members(runtime.db, list_id)
    changes = registry.plan_import(list_id, as_of, rows, known, source=f"import as of {as_of.isoformat()}")
    try:
        await registry_store.record_changes(
            runtime.db,
            runtime.broker,
            changes,
            principal.label,
            f"import of {list_id} as of {as_of.isoformat()}",
            runtime.clock.now(),
        )
    except registry_store.RegistryConflict as exc:
        raise HTTPException(409, f"{exc}; import the file again") from None
    listed = {row.uscc for row in rows}
    return ImportResult(
        list_id=list_id,
        as_of=as_of,
        rows=len(rows) + len(refused),
        registered=sum(1 for c in changes if c.before is None),
        updated=sum(1 for c in changes if c.before is not None and c.uscc in listed),
        ended=sum(1 for c in changes if c.uscc not in listed),
        unchanged=len(rows) - sum(1 for c in changes if c.uscc in listed),
        refused=[RefusedRow(line=r.line, reason=r.reason) for r in refused],
    )


@router.put(
    "/enterprises/{uscc:uscc}",
    tags=["registry"],
    response_model=EnterpriseOut,
    responses=REGISTRY_PROBLEMS,
    summary="Record a company: profile, phones, liaison, list memberships",
)
async def put_enterprise(
    uscc: Uscc, body: EnterpriseIn, runtime: RouterRuntimeDep, principal: AdminCaller
) -> EnterpriseOut:
    """The fields given replace the company's; memberships, when given, replace all of its memberships."""
    code, book = uscc_of(uscc), runtime.book
    if body.district is not None and body.district not in {d.code for d in book.city.districts}:
        raise HTTPException(422, f"district {body.district!r} is not a district of {book.city.name}")
    if body.liaison is not None and book.registry.find_liaison(body.liaison) is None:
        raise HTTPException(422, f"liaison {body.liaison!r} is not a liaison of config/registry.yaml")
    edit: dict[str, Any] = body.model_dump(exclude={"memberships"}, exclude_unset=True)
    if body.memberships is not None:
        unknown = sorted({m.list for m in body.memberships if book.registry.find_list(m.list) is None})
        if unknown:
            raise HTTPException(422, f"memberships: no list {', '.join(unknown)}")
        edit["memberships"] = [
            {
                "list": m.list,
                "since": m.since.isoformat(),
                "until": m.until.isoformat() if m.until else None,
                "source": "edit",
            }
            for m in body.memberships
        ]
    before = (await registry_store.companies(runtime.db, [code])).get(code)
    change = registry.plan_edit(code, before, edit)
    if change is not None:
        try:
            await registry_store.record_changes(
                runtime.db, runtime.broker, [change], principal.label, "edit", runtime.clock.now()
            )
        except registry_store.RegistryConflict as exc:
            raise HTTPException(409, f"{exc}; read the company again") from None
    return await _enterprise(runtime, code)


@router.get(
    "/enterprises/{uscc:uscc}",
    tags=["registry"],
    response_model=EnterpriseOut,
    responses=REGISTRY_PROBLEMS,
    summary="A company: profile, lists, liaison and its appeals",
)
async def get_enterprise(uscc: Uscc, runtime: RouterRuntimeDep, principal: RegistryReader) -> EnterpriseOut:
    """Operators and admins read any company; a liaison reads the companies it keeps contact with."""
    code = uscc_of(uscc)
    out = await _enterprise(runtime, code)
    if principal.kind == "liaison" and out.liaison != principal.name:
        raise HTTPException(403, "a liaison reads the companies it keeps contact with only")
    return out


@router.get(
    "/enterprises/{uscc:uscc}/audit",
    tags=["registry"],
    response_model=list[AuditEntry],
    responses={**REGISTRY_PROBLEMS, **paged_responses("A page of the audit trail")},
    summary="Who changed a company, when, and what",
)
async def enterprise_audit(
    uscc: Uscc,
    runtime: RouterRuntimeDep,
    _: OperatorCaller,
    page: Annotated[Pager, pager(default=200, maximum=1000)],
) -> list[AuditEntry]:
    """Every edit and import that changed the company, newest first; a `Link` header leads to the next page (the
    older changes) while there is one."""
    found, more = await registry_store.audit_of(
        runtime.db, uscc_of(uscc), limit=page.limit, after=page.after("audit", datetime, str)
    )
    return [AuditEntry(**entry) for entry in page.link("audit", found, more, registry_store.audit_key)]


async def _enterprise(runtime: RouterRuntime, code: str) -> EnterpriseOut:
    doc = (await registry_store.companies(runtime.db, [code])).get(code)
    if doc is None:
        raise HTTPException(404, "the registry has no such company")
    now = runtime.clock.now()
    today = now.astimezone(runtime.book.tz).date()
    lists = registry.lists_on(doc, today)
    appeals = [
        AppealRecord(
            appeal_id=a["_id"],
            deadlines=deadlines(a, now),
            **{k: v for k, v in a.items() if k not in ("_id", "clocks")},
        )
        for a in await service.history(runtime.db, code)
    ]
    return EnterpriseOut(
        uscc=code,
        name=doc["name"],
        district=doc.get("district"),
        industry=doc.get("industry"),
        phones=doc.get("phones", []),
        liaison=doc.get("liaison"),
        memberships=[MembershipIn(**{k: m[k] for k in ("list", "since", "until")}) for m in doc.get("memberships", [])],
        lists_today=lists,
        flags_today=registry.flags_of(lists, runtime.book.registry),
        version=doc["version"],
        appeals=appeals,
    )
