"""Intake's request and response bodies."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from libs import phones
from libs.deadlines import Deadline
from libs.events import Contact, Enterprise, PolicyRef
from libs.kinds import Category
from libs.links import Attachment
from libs.mailboxes import MAILBOX_SCHEMA, mailbox
from libs.uscc import USCC_SCHEMA, normalized_uscc
from libs.wire import Boolean, Integer

MAX_ATTACHMENTS = 20


class EnterpriseIn(Enterprise):
    uscc: str = Field(json_schema_extra=USCC_SCHEMA, examples=["91440300MA5FXT4K8N"])
    employees: Integer = Field(ge=0, le=10_000_000, description="Number of employees.", examples=[25])

    @field_validator("uscc")
    @classmethod
    def _valid_uscc(cls, value: str) -> str:
        return normalized_uscc(value)


# A phone in any usual form (`13800138000`, `+86 138 0013 8000`, `0086 13800138000`), kept and passed on in
# E.164 (`+8613800138000`): one phone, one limit, one comparison.
Phone = Annotated[
    str,
    Field(
        max_length=phones.MAX_LENGTH,
        examples=["13800138000", "+86 138 0013 8000"],
        json_schema_extra=phones.PHONE_SCHEMA,
    ),
    AfterValidator(phones.e164),
]


class ContactIn(Contact):
    """The contact as a channel gives it; the phone comes out in E.164, the e-mail address as one checked mailbox."""

    phone: Phone = Field(description="Mobile phone, in any usual form; kept and sent on in E.164.")

    email: Annotated[str | None, AfterValidator(mailbox)] = Field(
        default=None,
        max_length=254,
        description="E-mail address: one mailbox.",
        examples=["liwei@example.com"],
        json_schema_extra=MAILBOX_SCHEMA,
    )


class AppealIn(BaseModel):
    """An appeal as a channel adapter posts it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "channel_ref": "wx-20260303-0042",
                    "enterprise": {
                        "uscc": "91440300MA5FXT4K8N",
                        "name": "Shenzhen Lanhai Network Technology Co., Ltd.",
                        "employees": 25,
                        "industry": "internet services",
                        "district": "nanshan",
                    },
                    "contact": {"name": "Li Wei", "phone": "13800138000"},
                    "category": "financing",
                    "title": "Loan due while staff cannot return",
                    "description": (
                        "Our working-capital loan falls due on 10 March; staff cannot return after the holiday."
                    ),
                }
            ]
        },
    )

    channel_ref: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="The adapter's own id; posting it again returns the same appeal.",
    )
    enterprise: EnterpriseIn
    contact: ContactIn
    category: Category
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=20_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=MAX_ATTACHMENTS)
    flags: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,49}$")]] = Field(
        default_factory=list,
        max_length=10,
        description="What the company declares about itself: kept for the department, never a faster deadline "
        "(only the government's lists give those); `in_litigation` or `in_arbitration` makes the matter inadmissible.",
    )
    department: str | None = Field(
        default=None,
        max_length=64,
        description="The department the company chooses. It leads and has six hours to say whether the matter is "
        "its own; if it declines, routing takes over.",
        examples=["nanshan-finance"],
    )
    taken_by: str | None = Field(
        default=None,
        max_length=64,
        description="On a staff visit: the liaison (config/registry.yaml) who took the appeal down.",
        examples=["zhou-min"],
    )

    @field_validator("title", "description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CodeRequest(BaseModel):
    """A public form asks for a one-time code to prove the contact holds this phone."""

    model_config = ConfigDict(extra="forbid")

    phone: Phone = Field(description="The contact's mobile phone, in any usual form.")
    language: Literal["zh", "en"] = Field(default="zh", description="Language of the SMS.")


class CodeCheck(BaseModel):
    """The code the contact received, to check once."""

    model_config = ConfigDict(extra="forbid")

    phone: Phone
    code: str = Field(pattern=r"^[0-9]{6}$", description="Six digits, valid 10 minutes, 5 tries.", examples=["042917"])


class LinkRequest(BaseModel):
    """A company lost the link to its appeal and asks for it again on the appeal's phone."""

    model_config = ConfigDict(extra="forbid")

    phone: Phone = Field(description="The appeal's contact phone, in any usual form.")
    language: Literal["zh", "en"] = "zh"


class CodeSent(BaseModel):
    expires_at: datetime = Field(description="When the code stops working.")


class CodeChecked(BaseModel):
    verified: bool = Field(description="True: the code was right and is now used up.")


class AppealAccepted(BaseModel):
    """Answer to a submission: the appeal is durable and on its way to a department."""

    appeal_id: str
    status: str = Field(examples=["submitted"])
    status_url: str
    status_token: str = Field(description="Lets the company read this appeal, and only this one.")


class TimelineEntry(BaseModel):
    event_id: str
    type: str
    status: str
    time: datetime
    department: str | None = None
    clerk: str | None = Field(default=None, description="Who at the department acted, when the clerk gave a name.")
    note: str | None = None
    guidance: str | None = None
    resolution: str | None = None
    reason: str | None = None


class AppealView(BaseModel):
    """What a channel or the company sees of an appeal."""

    appeal_id: str
    channel: str
    channel_ref: str
    category: str
    title: str
    status: str
    department: str | None = Field(default=None, description="Lead department.")
    cohandlers: list[str] = Field(default_factory=list, description="Co-handling departments.")
    submitted_at: datetime
    updated_at: datetime | None = None
    resolution: str | None = None
    policies: list[PolicyRef] = Field(default_factory=list)
    policy_refs: list[str] = Field(default_factory=list)
    guidance: str | None = None
    reason: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    deadlines: list[Deadline] = Field(default_factory=list, description="Current SLA clocks, cancelled ones left out.")


class InfoIn(BaseModel):
    """The company's answer to a department's request for information."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "information": "Our loan contract number is 2026-0042; the bank branch is Nanshan Keyuan.",
                    "attachments": ["https://files.example.org/loan-contract.pdf"],
                }
            ]
        },
    )

    information: str = Field(min_length=1, max_length=8000, description="What the department asked for.")
    attachments: list[Attachment] = Field(
        default_factory=list, max_length=MAX_ATTACHMENTS, description="https links to documents."
    )

    @field_validator("information")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class FeedbackIn(BaseModel):
    """Whether the resolution solved the company's difficulty."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"resolved": True, "satisfaction": 5, "comment": "The bank deferred the loan, thank you."}]
        },
    )

    resolved: Boolean = Field(description="True confirms and closes; false reopens the appeal to its lead department.")
    satisfaction: Integer = Field(
        ge=1, le=5, description="1 (very unhappy) to 5 (very happy); 4 and 5 count as satisfied."
    )
    comment: str | None = Field(default=None, max_length=4000)


class AnswerAccepted(BaseModel):
    """The company's answer is durable in Kafka and on its way to the department."""

    appeal_id: str
    event_id: str = Field(description="Id of the company event; a retry of an unacknowledged answer reuses it.")
    status_url: str
