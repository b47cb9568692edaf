"""What the limits count and compare: a client's address, a submission's body, the proxies a service trusts."""

import pytest
from pydantic import ValidationError

from libs.clock import SystemClock
from libs.config import load_city
from libs.events import AppealSubmitted
from libs.kafka.publishing import make_event
from libs.kinds import EventType
from libs.settings import PROJECT_ROOT, ServiceSettings
from services.intake import codes, service
from services.intake.models import AppealIn
from tests.helpers import appeal_body


@pytest.mark.parametrize(
    ("address", "subject"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
    ],
)
def test_a_per_address_limit_counts_an_ipv4_address_or_an_ipv6_subscriber_s_network(address, subject):
    assert codes.client_subject(address) == subject


def test_a_client_address_that_is_no_ip_address_is_refused():
    with pytest.raises(ValueError):
        codes.client_subject("unknown")


def test_a_retry_s_body_digest_is_the_first_one_s_and_any_other_body_s_is_not():
    first = appeal_body(flags=["export", "hi_tech"])
    retry = {**first, "contact": {**first["contact"], "phone": "+86 138 0013 8000"}, "flags": ["hi_tech", "export"]}
    other = {**first, "title": first["title"] + "!"}
    digest = lambda body, key="k": service.body_digest(key, AppealIn.model_validate(body))  # noqa: E731
    assert digest(first) == digest(retry)
    assert digest(first) != digest(other)
    assert digest(first) != digest(first, key="another key"), "keyed: an erased contact is not guessable from it"


def test_a_record_stored_before_digests_were_kept_compares_by_its_event():
    body = AppealIn.model_validate(appeal_body())
    city = load_city(PROJECT_ROOT / "config")
    filed = service.build_submitted("01JB8X4R5ZJ6Q8V2Y7K9M3N4P5", "wechat", body, city, SystemClock())
    # Such a record holds an appeal.submitted.v1, with its contact.
    legacy = AppealSubmitted(**filed.data.model_dump(), contact=body.contact)
    event = make_event("appeals/intake", EventType.appeal_submitted, legacy.appeal_id, legacy)
    record = {"event": event.model_dump_json()}
    assert service.stored_digest("k", record) == service.body_digest("k", body)
    assert service.stored_digest("k", {"event": "{}"}) is None


@pytest.mark.parametrize("value", ["10.0.0.0/8", "203.0.113.7, 2001:db8::/32", "*", ""])
def test_trusted_proxies_are_addresses_or_networks(value):
    assert ServiceSettings(forwarded_allow_ips=value).forwarded_allow_ips == value.replace(", ", ",")


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.0/33", "127.0.0.1;10.0.0.1"])
def test_a_trusted_proxy_that_is_no_address_stops_the_start(value):
    with pytest.raises(ValidationError):
        ServiceSettings(forwarded_allow_ips=value)
