"""Router's request and response bodies."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from libs.events import ActionKind, Category, PolicyRef


class ActionIn(BaseModel):
    """A department's action on one of its appeals."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "accept", "note": "We will contact the bank today."},
                {
                    "action": "decline",
                    "guidance": "Customs questions go to Shenzhen Customs.",
                    "target_department": "customs",
                },
                {
                    "action": "resolve",
                    "resolution": "Repayment deferred by 6 months.",
                    "policy_refs": ["deferred-repayment"],
                },
            ]
        },
    )

    action: ActionKind
    note: str | None = Field(default=None, max_length=4000)
    guidance: str | None = Field(default=None, max_length=4000, description="Required for decline.")
    resolution: str | None = Field(default=None, max_length=8000, description="Required for resolve.")
    policy_refs: list[str] = Field(default_factory=list, max_length=20)
    target_department: str | None = Field(
        default=None, max_length=64, description="Required for transfer and add_cohandler."
    )


class AppealOut(BaseModel):
    """An appeal as the departments see it."""

    appeal_id: str
    status: str
    lead: str | None = None
    cohandlers: list[str] = Field(default_factory=list)
    category: str
    district: str
    size_band: str
    channel: str
    flags: list[str] = Field(default_factory=list)
    title: str
    description: str
    enterprise: dict
    contact: dict
    submitted_at: datetime
    updated_at: datetime | None = None
    sla_profile: str | None = None
    policy_available: bool = False
    rule_id: str | None = None
    policies: list[PolicyRef] = Field(default_factory=list)
    resolution: str | None = None
    reason: str | None = None
    sequence: int


class PreviewIn(BaseModel):
    """The facts of an appeal to try the routing on."""

    category: Category
    district: str = Field(examples=["nanshan"])
    employees: int = Field(ge=0, examples=[25])
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=20_000)
    flags: list[str] = Field(default_factory=list)


class PreviewOut(BaseModel):
    """What would happen to such an appeal, and why."""

    lead: str
    cohandlers: list[str]
    rule_id: str | None
    policies: list[PolicyRef]
    policy_available: bool
    sla_profile: str
    size_band: str
    explanation: list[str]
