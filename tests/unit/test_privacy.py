"""When a contact's time is up, as plain arithmetic: retention counts from the appeal's close."""

from datetime import UTC, datetime, timedelta

from services.intake.privacy import erasure_due
from services.intake.settings import IntakeSettings

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)


def test_a_contact_is_due_its_retention_after_the_appeal_closed_and_an_asked_erasure_at_the_close():
    (retention, why), (asked, because) = erasure_due(NOW, timedelta(days=180))
    assert (why, because) == ("retention", "request")
    assert retention["closed_at"] == {"$lte": datetime(2026, 6, 9, 2, 0, tzinfo=UTC)}, "180 days before now"
    assert asked == {"erase_on_close": True, "closed_at": {"$lte": NOW}, "contact_erased_at": None}
    assert retention["contact_erased_at"] is None, "an erased contact is not erased again"


def test_the_retention_is_half_a_year_unless_set_in_seconds_or_iso_8601(monkeypatch):
    assert IntakeSettings().contact_retention == timedelta(days=180)
    monkeypatch.setenv("INTAKE_CONTACT_RETENTION", "15")
    assert IntakeSettings().contact_retention == timedelta(seconds=15)
    monkeypatch.setenv("INTAKE_CONTACT_RETENTION", "P30D")
    assert IntakeSettings().contact_retention == timedelta(days=30)
