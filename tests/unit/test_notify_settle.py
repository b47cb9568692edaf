"""What one delivery attempt comes to (services/notify/dispatch.settle): delivered, retried later, or given up."""

import json
from datetime import UTC, datetime, timedelta

from services.notify.channels import DeliveryError
from services.notify.dispatch import Settled, settle
from services.notify.notices import schedule

NOW = datetime(2026, 3, 3, 10, tzinfo=UTC)
RECORD = {
    "_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5:company:sms",
    "appeal_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5",
    "event_id": "01JB8X4R5ZJ6Q8V2Y7K9M3N4P5",
    "event_type": "appeal.routed.v1",
    "recipient": "company",
    "audience": "company",
    "channel": "sms",
    "attempts": 1,
    "traceparent": None,
    "created_at": datetime(2026, 3, 3, 9, 59, tzinfo=UTC),
}


def event_types(settled: Settled) -> list[tuple[str, str]]:
    return [(item["topic"], json.loads(item["payload"])["type"]) for item in settled.events]


def test_a_delivered_attempt_ends_the_record_and_owes_its_outcome_event():
    settled = settle(RECORD, None, NOW, max_attempts=5, retry_base_seconds=2)
    update, result = settled.update, settled.result
    assert update["status"] == "delivered" and update["attempts"] == 2
    assert "due_at" not in settled.applied({**RECORD, "due_at": NOW}), "nothing left to send"
    assert event_types(settled) == [("notify.deliveries.v1", "notification.delivered.v1")]
    assert (result.channel, result.audience, result.outcome) == ("sms", "company", "delivered")
    again = settle(RECORD, None, NOW + timedelta(minutes=5), max_attempts=5, retry_base_seconds=2)
    assert again.events[0]["id"] == settled.events[0]["id"], "a record's outcome keeps its id when sent again"


def test_a_failed_attempt_with_attempts_left_is_tried_again_later_and_owes_nothing_yet():
    settled = settle(RECORD, DeliveryError("provider said 503"), NOW, max_attempts=5, retry_base_seconds=2)
    fields = settled.applied(RECORD)
    assert fields["status"] == "retrying" and fields["last_error"] == "provider said 503"
    assert NOW <= fields["due_at"] <= NOW + timedelta(seconds=4), "backoff up to base * 2^(attempts-1)"
    assert event_types(settled) == []
    assert settled.result.outcome == "retried"


def test_the_last_attempt_and_a_permanent_error_give_up_and_tell_operators():
    for record, error in (
        ({**RECORD, "attempts": 4}, DeliveryError("timeout")),
        (RECORD, DeliveryError("no such number", permanent=True)),
    ):
        settled = settle(record, error, NOW, max_attempts=5, retry_base_seconds=2)
        assert settled.update["status"] == "failed" and settled.result.outcome == "failed"
        assert event_types(settled) == [
            ("notify.deliveries.v1", "notification.failed.v1"),
            ("notify.deliveries.v1.dlq", "notification.failed.v1"),
        ]


def test_a_notice_is_due_with_its_soonest_delivery_left_and_held_only_while_all_left_wait_for_office_hours():
    later, opening = NOW + timedelta(seconds=3), NOW + timedelta(hours=12)
    company = {"status": "retrying", "due_at": later}
    handler = {"status": "held", "due_at": opening}
    assert schedule([company, handler]) == {"status": "sending", "due_at": later}
    delivered = settle({**RECORD, **company}, None, NOW, max_attempts=5, retry_base_seconds=2).applied(company)
    assert schedule([delivered, handler]) == {"status": "held", "due_at": opening}
    assert schedule([delivered]) == {"status": "done"}, "nothing left to send: no due time"
