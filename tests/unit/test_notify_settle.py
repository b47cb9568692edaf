"""What one delivery attempt comes to (services/notify/service.settle): delivered, retried later, or given up."""

import json
from datetime import UTC, datetime, timedelta

from services.notify.channels import DeliveryError
from services.notify.service import Settled, settle

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
    assert update["$set"]["status"] == "delivered" and update["$set"]["attempts"] == 2
    assert {"claim", "claim_until", "due_at"} <= update["$unset"].keys()
    assert event_types(settled) == [("notify.deliveries.v1", "notification.delivered.v1")]
    assert (result.channel, result.audience, result.outcome) == ("sms", "company", "delivered")
    again = settle(RECORD, None, NOW + timedelta(minutes=5), max_attempts=5, retry_base_seconds=2)
    assert again.events[0]["id"] == settled.events[0]["id"], "a record's outcome keeps its id when sent again"


def test_a_failed_attempt_with_attempts_left_is_tried_again_later_and_owes_nothing_yet():
    settled = settle(RECORD, DeliveryError("provider said 503"), NOW, max_attempts=5, retry_base_seconds=2)
    fields = settled.update["$set"]
    assert fields["status"] == "retrying" and fields["last_error"] == "provider said 503"
    assert NOW <= fields["due_at"] <= NOW + timedelta(seconds=4), "backoff up to base * 2^(attempts-1)"
    assert "due_at" not in settled.update["$unset"] and event_types(settled) == []
    assert settled.result.outcome == "retried"


def test_the_last_attempt_and_a_permanent_error_give_up_and_tell_operators():
    for record, error in (
        ({**RECORD, "attempts": 4}, DeliveryError("timeout")),
        (RECORD, DeliveryError("no such number", permanent=True)),
    ):
        settled = settle(record, error, NOW, max_attempts=5, retry_base_seconds=2)
        assert settled.update["$set"]["status"] == "failed" and settled.result.outcome == "failed"
        assert event_types(settled) == [
            ("notify.deliveries.v1", "notification.failed.v1"),
            ("notify.deliveries.v1.dlq", "notification.failed.v1"),
        ]
