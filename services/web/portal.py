"""The company portal: its front page, the language switch, and what its two page families share (intake's
errors by field, the visitor's address, the wait after a limit, the appeal's token cookie). The families are
portal_submit.py (submitting an appeal, the phone's code, the lost link) and portal_follow.py (following an
appeal, answering, feedback, correcting the contact)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from services.web import answers, pages
from services.web.answers import see_other
from services.web.i18n import t

router = APIRouter(include_in_schema=False)

# Form fields as intake names them in its 422 answers ("enterprise.uscc"), so each error lands beside its field.
TEXT_FIELDS = (
    "enterprise.uscc",
    "enterprise.name",
    "enterprise.employees",
    "enterprise.industry",
    "enterprise.district",
    "contact.name",
    "contact.phone",
    "contact.email",
    "category",
    "title",
    "description",
    "attachments",
    "department",
    "code",
)


def errors_of(response_json: Any) -> tuple[dict[str, str], list[str]]:
    """Intake's 422 problem as messages by the portal's form fields, and those that belong to no field."""
    return answers.errors_of(response_json, TEXT_FIELDS)


@router.get("/")
async def home() -> RedirectResponse:
    """The portal's front page is the form."""
    return see_other("/appeals/new")


@router.get("/lang/{lang}")
async def switch_language(lang: str, request: Request, next_url: Annotated[str | None, Query(alias="next")] = None):
    """Switch between Chinese and English and go back to the page (the workbench's pages link here too)."""
    return pages.lang_cookie(see_other(pages.safe_next(next_url)), lang, request)


def client_of(request: Request) -> str:
    """The visitor's address for intake's limits: the peer of the connection, or the address a trusted proxy
    passed (uvicorn believes X-Forwarded-For only from WEB_FORWARDED_ALLOW_IPS); empty if there is none."""
    return request.client.host if request.client else ""


def wait_words(lang: str, seconds: str) -> str:
    return f"请求过于频繁，请 {seconds} 秒后再试。" if lang == "zh" else f"Too many requests: try again in {seconds} s."


def too_many(page: Response, upstream: Any) -> Response:
    page.headers["Retry-After"] = upstream.headers.get("retry-after", "60")
    return page


def said_in(lang: str, errors: dict[str, str]) -> dict[str, str]:
    """Intake words its errors in English; a Chinese page says which field is wrong in Chinese first."""
    return {
        name: (f"{t('zh', 'invalid')}（{text}）" if lang == "zh" and text.isascii() else text)
        for name, text in errors.items()
    }


def token_cookie(appeal_id: str) -> str:
    return f"appeal_{appeal_id}"


def keep_token(request: Request, response: Response, appeal_id: str, token: str) -> None:
    # Path-scoped: the browser sends it to this appeal's pages only.
    response.set_cookie(
        token_cookie(appeal_id),
        token,
        max_age=pages.YEAR,
        path=f"/appeals/{appeal_id}",
        httponly=True,
        samesite="lax",
        secure=pages.secure(request),
    )
