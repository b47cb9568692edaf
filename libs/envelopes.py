"""The event contract's envelopes: CloudEvents 1.0 in structured JSON mode, one class per kind of event on a topic.

A consumer receives them (libs.kafka), the AsyncAPI documents name them, and libs/contract.py says which travels
where.
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, Field, PrivateAttr

from libs.events import (
    ActionRejected,
    AppealChanged,
    AppealContact,
    AppealContactErased,
    AppealFiled,
    AppealSubmitted,
    AssignmentCreated,
    AssignmentWithdrawn,
    CompanyFeedback,
    CompanyInfoProvided,
    CompanyMessage,
    DepartmentAction,
    EnterpriseChanged,
    NotificationOutcome,
    SlaClockChanged,
    SlaClocksReported,
    SlaClockType,
)
from libs.ids import new_id
from libs.kinds import EventType

DataT = TypeVar("DataT", bound=BaseModel)


class CloudEvent(BaseModel, Generic[DataT]):
    """CloudEvents 1.0, structured JSON mode; `traceparent` is the distributed-tracing extension."""

    specversion: str = "1.0"
    id: str = Field(default_factory=new_id, description="ULID, unique per event.")
    source: str = Field(examples=["appeals/router"])
    type: str = Field(examples=["appeal.routed.v1"])
    subject: str = Field(description="The appeal id; also the Kafka key.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: str = "application/json"
    traceparent: str | None = None
    data: DataT
    # Where a consumer read the event: (topic, partition, offset); not part of the event itself.
    _position: tuple[str, int, int] | None = PrivateAttr(default=None)
    # The record itself (its bytes, key and headers), for the .dlq should its handler keep failing.
    _record: Any = PrivateAttr(default=None)

    @property
    def position(self) -> tuple[str, int, int] | None:
        """(topic, partition, offset) of the record this event was read from, when read from Kafka."""
        return self._position


class RawEvent(CloudEvent[Any]):
    """An envelope whose data is not yet validated against its type."""

    data: dict[str, Any]


class Envelope(CloudEvent[DataT], Generic[DataT]):
    """CloudEvents 1.0 envelope of one kind of event; `TYPES` are the event types it may carry."""

    TYPES: ClassVar[tuple[EventType, ...]] = ()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "type" in cls.__annotations__:
            cls.TYPES = tuple(get_args(cls.model_fields["type"].annotation))
            cls.__doc__ = f"CloudEvents 1.0 envelope. {cls.model_fields['data'].annotation.__doc__}"


_TYPE = "Event type."


class AppealSubmittedEvent(Envelope[AppealSubmitted]):
    type: Literal[EventType.appeal_submitted] = Field(description=_TYPE, examples=["appeal.submitted.v1"])


class AppealFiledEvent(Envelope[AppealFiled]):
    type: Literal[EventType.appeal_submitted_v2] = Field(description=_TYPE, examples=["appeal.submitted.v2"])


class AppealContactEvent(Envelope[AppealContact]):
    type: Literal[EventType.appeal_contact] = Field(description=_TYPE, examples=["appeal.contact.v1"])


class AppealContactErasedEvent(Envelope[AppealContactErased]):
    type: Literal[EventType.appeal_contact_erased] = Field(description=_TYPE, examples=["appeal.contact_erased.v1"])


class AppealLifecycleEvent(Envelope[AppealChanged]):
    type: Literal[
        EventType.appeal_routed,
        EventType.appeal_accepted,
        EventType.appeal_declined,
        EventType.appeal_rerouted,
        EventType.appeal_transferred,
        EventType.appeal_cohandler_added,
        EventType.appeal_info_requested,
        EventType.appeal_info_provided,
        EventType.appeal_resolved,
        EventType.appeal_confirmed,
        EventType.appeal_reopened,
        EventType.appeal_closed,
        EventType.appeal_rejected,
        EventType.appeal_extension_requested,
        EventType.appeal_extension_approved,
        EventType.appeal_extension_rejected,
        EventType.appeal_transfer_requested,
        EventType.appeal_transfer_refused,
        EventType.appeal_decline_overruled,
        EventType.appeal_decline_confirmed,
        EventType.appeal_urged,
        EventType.appeal_contributed,
        EventType.appeal_visit_due,
        EventType.appeal_visited,
    ] = Field(description=_TYPE, examples=["appeal.routed.v1"])


class DepartmentActionEvent(Envelope[DepartmentAction]):
    type: Literal[EventType.department_action] = Field(description=_TYPE, examples=["department.action.v1"])


class CompanyInfoProvidedEvent(Envelope[CompanyInfoProvided]):
    type: Literal[EventType.company_info_provided] = Field(description=_TYPE, examples=["company.info_provided.v1"])


class CompanyFeedbackEvent(Envelope[CompanyFeedback]):
    type: Literal[EventType.company_feedback] = Field(description=_TYPE, examples=["company.feedback.v1"])


class SlaClockEvent(Envelope[SlaClockChanged]):
    type: SlaClockType = Field(description=_TYPE, examples=["sla.started.v1"])


class SlaReportedEvent(Envelope[SlaClocksReported]):
    type: Literal[EventType.sla_reported] = Field(description=_TYPE, examples=["sla.reported.v2"])


def reports_of(event: CloudEvent[SlaClocksReported]) -> list[SlaClockEvent]:
    """Each report of an `sla.reported.v2` as the `sla.*.v1` event it stands for (its id, type and data; the
    packed event's time, trace and position)."""
    events = []
    for report in event.data.reports:
        one = SlaClockEvent(
            id=report.id,
            source=event.source,
            type=report.type,
            subject=event.subject,
            time=event.time,
            traceparent=event.traceparent,
            data=report.data,
        )
        one._position = event.position
        events.append(one)
    return events


def unpacked(events: Iterable[CloudEvent[Any]]) -> list[CloudEvent[Any]]:
    """The events with each `sla.reported.v2` replaced by the `sla.*.v1` events it packs."""
    out: list[CloudEvent[Any]] = []
    for event in events:
        if event.type == EventType.sla_reported:
            out += reports_of(event)
        else:
            out.append(event)
    return out


class SlaAlertEvent(Envelope[SlaClockChanged]):
    type: Literal[EventType.sla_warning, EventType.sla_breached, EventType.sla_urged] = Field(
        description=_TYPE, examples=["sla.warning.v1"]
    )


class AssignmentCreatedEvent(Envelope[AssignmentCreated]):
    type: Literal[EventType.assignment_created] = Field(description=_TYPE, examples=["assignment.created.v1"])


class AssignmentWithdrawnEvent(Envelope[AssignmentWithdrawn]):
    type: Literal[EventType.assignment_withdrawn] = Field(description=_TYPE, examples=["assignment.withdrawn.v1"])


class ActionRejectedEvent(Envelope[ActionRejected]):
    type: Literal[EventType.action_rejected] = Field(description=_TYPE, examples=["department.action_rejected.v1"])


class EnterpriseEvent(Envelope[EnterpriseChanged]):
    type: Literal[EventType.enterprise_registered, EventType.enterprise_updated] = Field(
        description=_TYPE, examples=["enterprise.updated.v1"]
    )


class CompanyMessageEvent(Envelope[CompanyMessage]):
    type: Literal[EventType.company_code_issued, EventType.company_link_requested] = Field(
        description=_TYPE, examples=["company.code_issued.v1"]
    )


class NotificationOutcomeEvent(Envelope[NotificationOutcome]):
    type: Literal[EventType.notification_delivered, EventType.notification_failed] = Field(
        description=_TYPE, examples=["notification.delivered.v1"]
    )
