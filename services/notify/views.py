"""Notify's HTTP surface: staff subscriptions and the delivery log."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from yarl import URL

from libs.auth import Principal, require
from libs.http import problem_responses
from libs.paging import Pager, paged_responses, pager
from services.notify import channels, notices
from services.notify.models import DeliveryView, Subscription, SubscriptionView
from services.notify.rules import CITY_SUPERVISOR
from services.notify.runtime import NotifyRuntimeDep

router = APIRouter(prefix="/v1", tags=["notifications"])

DepartmentOrAdmin = Annotated[
    Principal, Depends(require("department", "liaison", "admin"))
]  # a department's or a liaison's own key, or an admin's
StaffOrOperator = Annotated[
    Principal, Depends(require("department", "liaison", "operator", "admin"))
]  # a department's, a liaison's, an operator's or an admin's key

PROBLEMS = problem_responses(
    {
        401: "No valid API key",
        403: "Outside the key's department, or a webhook the platform may not post to (a private, loopback or "
        "link-local address; plain http outside the allowed networks)",
        404: "Unknown recipient",
        422: "Invalid fields",
    }
)
Recipient = Annotated[
    str,
    Path(
        pattern=r"^[a-z][a-z0-9-]*:(handler|head|supervisor|leadership)$|^liaison:[a-z][a-z0-9-]*$",
        description="`<department>:<role>` (handler, head, supervisor or leadership), `liaison:<id>` for a company "
        "liaison of config/registry.yaml, or `city:supervisor` for the city's supervisor (city.yaml's "
        "city_supervisor, told at the urging ladder's last level; an admin's key manages it).",
        examples=["nanshan-finance:head"],
    ),
]


def mask(channel: str, address: str) -> str:
    """Enough of an address to tell which one it was, not enough to use it."""
    if channel == "email" and "@" in address:
        name, _, domain = address.partition("@")
        return f"{name[:1]}***@{domain}"
    if channel == "webhook":
        return _origin(address)
    return f"{address[:3]}****{address[-4:]}" if len(address) > 7 else "****"


def _origin(address: str) -> str:
    """A webhook URL's scheme, host and port: its path, query and user part may hold a secret."""
    try:
        url = URL(address)
        return f"{url.origin()}/***" if url.absolute and url.host else "***"
    except ValueError:
        return "***"


async def _check_webhook(body: Subscription, runtime) -> None:
    """A 403 naming `webhook_url` and why the platform may not post there: the class of the address it resolves to,
    or plain http outside the allowed networks. Its form is the model's (422); a name that does not resolve now is
    taken, for every delivery resolves it again and is refused then if need be."""
    if body.webhook_url is None:
        return
    reason = await runtime.senders.webhooks.refusal(body.webhook_url)
    if reason is None or reason == channels.UNRESOLVED:
        return
    raise HTTPException(403, f"webhook_url {reason}")


def _check_recipient(recipient: str, principal: Principal, runtime) -> None:
    code, _, name = recipient.partition(":")
    if code == "liaison":
        if runtime.book.registry.find_liaison(name) is None:
            raise HTTPException(404, f"no liaison {name}")
        if principal.kind in ("department", "liaison") and (principal.kind, principal.name) != ("liaison", name):
            raise HTTPException(403, f"a key of {principal.name} cannot manage liaison {name}")
        return
    if recipient == CITY_SUPERVISOR:
        if runtime.book.city.city_supervisor is None:
            raise HTTPException(404, "the city has no supervisor (city.yaml's city_supervisor)")
        if principal.kind in ("department", "liaison"):
            raise HTTPException(403, f"a key of {principal.name} cannot manage the city's supervisor")
        return
    if principal.kind == "liaison":
        raise HTTPException(403, f"a liaison's key cannot manage recipients of {code}")
    if runtime.book.city.department(code) is None:
        raise HTTPException(404, f"no department {code}")
    if principal.kind == "department" and principal.name != code:
        raise HTTPException(403, f"a key of {principal.name} cannot manage recipients of {code}")


@router.put(
    "/subscriptions/{recipient}",
    response_model=SubscriptionView,
    responses=PROBLEMS,
    summary="How a member of staff is told (admin, or the department's own key)",
)
async def put_subscription(
    recipient: Recipient,
    body: Subscription,
    runtime: NotifyRuntimeDep,
    principal: DepartmentOrAdmin,
):
    """Webhook URL and secret, e-mail, phone, WeChat id, quiet hours and language; replaces what was there."""
    _check_recipient(recipient, principal, runtime)
    # A webhook must be https to a public address, or point into a network the operators allow (the only
    # targets plain http may have): checked here, its name resolved, and again at every delivery.
    await _check_webhook(body, runtime)
    await runtime.db.subscriptions.replace_one({"_id": recipient}, body.model_dump(), upsert=True)
    runtime.memory.subscriptions.pop(recipient, None)
    return SubscriptionView(
        recipient=recipient, **{**body.model_dump(), "webhook_secret": "***" if body.webhook_secret else None}
    )


@router.get(
    "/subscriptions/{recipient}",
    response_model=SubscriptionView,
    responses=PROBLEMS,
    summary="A member of staff's subscription",
)
async def get_subscription(
    recipient: Recipient,
    runtime: NotifyRuntimeDep,
    principal: StaffOrOperator,
):
    _check_recipient(recipient, principal, runtime)
    doc = await runtime.db.subscriptions.find_one({"_id": recipient})
    if doc is None:
        raise HTTPException(404, f"no subscription for {recipient}")
    doc.pop("_id")
    return SubscriptionView(
        recipient=recipient, **{**doc, "webhook_secret": "***" if doc.get("webhook_secret") else None}
    )


def _shown_to(principal: Principal) -> Callable[[dict], bool] | None:
    """Which deliveries a key reads: a department's its own staff's, a liaison's its own, the others' every one."""
    if principal.kind == "department":
        own = f"{principal.name}:"
        return lambda d: d["recipient"].startswith(own)
    if principal.kind == "liaison":
        liaison = f"liaison:{principal.name}"
        return lambda d: d["recipient"] == liaison
    return None


@router.get(
    "/notifications",
    response_model=list[DeliveryView],
    responses={**PROBLEMS, **paged_responses("A page of the delivery log")},
    summary="Delivery log of an appeal",
)
async def notifications(
    appeal_id: Annotated[str, Query(min_length=1, max_length=64)],
    runtime: NotifyRuntimeDep,
    principal: StaffOrOperator,
    page: Annotated[Pager, pager(default=500, maximum=1000)],
):
    """Every notification about the appeal, oldest first: who, which channel, status, attempts, last error. A `Link`
    header leads to the next page while there is one."""
    docs, more = await notices.delivery_log(
        runtime.db,
        appeal_id,
        limit=page.limit,
        after=page.after("deliveries", datetime, str),
        shown=_shown_to(principal),
    )
    docs = page.link("deliveries", docs, more, notices.delivery_key)
    return [
        DeliveryView(
            notification_id=d["_id"],
            event_type=d["event_type"],
            recipient=d["recipient"],
            audience=d["audience"],
            channel=d["channel"],
            to=mask(d["channel"], d["to"]),
            status=d["status"],
            attempts=d["attempts"],
            subject=d["subject"],
            created_at=d["created_at"],
            delivered_at=d.get("delivered_at"),
            failed_at=d.get("failed_at"),
            last_error=channels.shown_reason(d["channel"], d.get("last_error")),
        )
        for d in docs
    ]
