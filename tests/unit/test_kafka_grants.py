"""Who may do what on Kafka, as the contract says: each principal its own topics and groups, nothing more."""

import pytest

from libs.contract import (
    APPEALS_ACTIONS,
    APPEALS_LIFECYCLE,
    APPEALS_SUBMITTED,
    COMPANY_MESSAGES,
    SERVICE_NAMES,
    dead_letter_topic,
    department_actions_topic,
    department_topic,
)
from libs.kafka_admin import Grant, department_principal, grants, principals, scram_argument

CODES = ["nanshan-finance", "tax"]
GRANTS = grants(CODES)


def allowed(principal: str, operation: str, resource: str = "topic") -> set[str]:
    return {g.name for g in GRANTS if (g.principal, g.operation, g.resource) == (principal, operation, resource)}


def test_a_department_reads_its_topic_writes_its_actions_and_joins_groups_of_its_name_only():
    user = department_principal("tax")
    assert allowed(user, "READ") == {department_topic("tax")}
    assert allowed(user, "WRITE") == {department_actions_topic("tax")}
    assert {(g.name, g.prefixed) for g in GRANTS if g.principal == user and g.resource == "group"} == {
        ("dept-tax.", True)
    }


def test_nobody_writes_the_shared_actions_topic_and_only_router_reads_every_department_s_actions():
    assert not [g for g in GRANTS if g.name == APPEALS_ACTIONS and g.operation == "WRITE"]
    readers = {g.principal for g in GRANTS if g.name == department_actions_topic("tax") and g.operation == "READ"}
    writers = {g.principal for g in GRANTS if g.name == department_actions_topic("tax") and g.operation == "WRITE"}
    assert readers == {"router"} and writers == {"router", "dept-tax"}


@pytest.mark.parametrize(
    ("topic", "writers"),
    [
        (APPEALS_SUBMITTED, {"intake"}),
        (APPEALS_LIFECYCLE, {"router"}),
        (department_topic("tax"), {"router", "sla"}),
        (COMPANY_MESSAGES, {"intake"}),
    ],
)
def test_each_platform_topic_is_written_by_its_producers_alone(topic, writers):
    assert {g.principal for g in GRANTS if g.name == topic and g.operation == "WRITE"} == writers


def test_a_service_reads_what_its_consumers_read_dead_letters_them_and_joins_only_its_own_groups():
    assert allowed("sla", "READ") == {APPEALS_LIFECYCLE}
    assert dead_letter_topic(APPEALS_LIFECYCLE) in allowed("sla", "WRITE")
    for service in SERVICE_NAMES:
        joined = {
            (g.name, g.prefixed) for g in GRANTS if (g.principal, g.resource, g.operation) == (service, "group", "READ")
        }
        assert joined == {(f"{service}.", True)}, service
    # intake sheds while others lag: it may see their offsets, and read none of their records.
    assert "router.submitted" in allowed("intake", "DESCRIBE", "group")
    assert allowed("intake", "READ") == {APPEALS_LIFECYCLE, "sla.events.v1", "sla.events.v2"}


def test_every_user_has_a_principal_and_the_format_tool_never_sees_a_password():
    assert principals(CODES) == ["admin", *SERVICE_NAMES, "dept-nanshan-finance", "dept-tax"]
    argument = scram_argument("dept-tax", "s3cret-password", b"\0" * 24)
    assert argument.startswith("SCRAM-SHA-512=[name=dept-tax,iterations=8192,salt=")
    assert "s3cret-password" not in argument and "saltedpassword=" in argument


def test_grants_are_one_each_and_in_a_stable_order():
    assert sorted(set(GRANTS)) == GRANTS and all(isinstance(g, Grant) for g in GRANTS)
