"""The company's contact on its appeal: seen and corrected by the company, erased by an admin on request (PIPL)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from libs.auth import Principal, require
from libs.contract import APPEALS_CONTACTS
from libs.events import Contact
from libs.http import problem
from services.intake import privacy, service
from services.intake.models import ContactIn
from services.intake.runtime import IntakeRuntimeDep
from services.intake.views import PROBLEMS, AnswerableAppeal

router = APIRouter(prefix="/v1", tags=["privacy"])

AdminCaller = Annotated[Principal, Depends(require("admin"))]


class ContactView(BaseModel):
    """Who the departments reach at the company about this appeal, as the company may see and correct it."""

    appeal_id: str
    contact: Contact | None = Field(description="None once erased (the retention ended, or erasure was asked for).")
    erased_at: datetime | None = None


class ContactChanged(BaseModel):
    appeal_id: str
    event_id: str = Field(description="Id of the appeal.contact.v1 event that carries the correction.")


class Erasure(BaseModel):
    """An admin's erasure of one company's contacts, as the audit keeps it."""

    erasure_id: str
    at: datetime
    by: str = Field(description="The admin key's name.")
    appeals: list[str] = Field(description="The company's closed appeals whose contacts were erased.")
    erased: int = Field(description="How many of them still had one.")
    at_close: list[str] = Field(
        description="Its open appeals: their contacts go when each closes, for the departments answer through them."
    )


@router.get(
    "/appeals/{appeal_id}/contact",
    response_model=ContactView,
    responses=PROBLEMS,
    summary="The appeal's contact (status token or channel key)",
)
async def get_contact(record: AnswerableAppeal) -> ContactView:
    """The company sees what the platform keeps of its contact, and until when it is kept."""
    return ContactView(
        appeal_id=record["_id"], contact=privacy.stored_contact(record), erased_at=record.get("contact_erased_at")
    )


@router.put(
    "/appeals/{appeal_id}/contact",
    status_code=202,
    response_model=ContactChanged,
    responses=PROBLEMS,
    summary="Correct the appeal's contact (status token or channel key)",
)
async def correct_contact(body: ContactIn, record: AnswerableAppeal, runtime: IntakeRuntimeDep):
    """The departments and the messages use the corrected contact from now on; 409 once it was erased."""
    event = await privacy.next_contact_event(runtime.db, record["_id"], runtime.follow_link, contact=body)
    if event is None:
        return problem(409, "this appeal's contact was erased; there is nothing left to correct")
    try:
        await service.publish_acknowledged(
            runtime.broker, APPEALS_CONTACTS, event, runtime.settings.publish_timeout_seconds
        )
    except service.BrokerUnavailable:
        retry = str(runtime.settings.retry_after_seconds)
        return problem(
            503, "the correction is kept but not yet passed on; send it again", headers={"Retry-After": retry}
        )
    return JSONResponse(ContactChanged(appeal_id=record["_id"], event_id=event.id).model_dump(), status_code=202)


@router.post(
    "/companies/{uscc}/erasure",
    response_model=Erasure,
    responses=PROBLEMS,
    summary="Erase every contact of one company's appeals (admin key)",
)
async def erase_company(
    uscc: Annotated[str, Path(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$", description="The company's credit code.")],
    runtime: IntakeRuntimeDep,
    admin: AdminCaller,
) -> Erasure:
    """Every service drops the contacts of the company's closed appeals within moments, and Kafka's copy within a
    day; an open appeal's go when it closes. Audited, by the key's name."""
    try:
        entry = await runtime.eraser.erase_company(runtime.db, uscc, admin.label, runtime.clock.now())
    except Exception as exc:  # the broker: the audit is written only once every erasure event is out
        raise HTTPException(503, "the erasure could not be passed on; nothing is lost, ask again") from exc
    return Erasure(erasure_id=entry["_id"], **{k: v for k, v in entry.items() if k not in ("_id", "uscc")})
