"""Every service's OpenAPI document against the running service, by schemathesis with every check it has
(`st run --checks all`: the examples, coverage, fuzzing and stateful phases), under the keys its callers hold.

The document must tell the truth: every status it can answer declared with its body and headers, every request it
calls valid taken and every other refused, 405 with the `Allow` header, keys enforced. What a document names beyond
JSON Schema, schemathesis is taught as a client generator would be (tests/e2e/schemathesis_formats.py: `uscc`,
`phone`), and a list's `cursor`, which only a `Link` header hands out, is given as a client would hold one.

Slow (`make test-slow`): a fresh stack, and about five minutes on two cores.
"""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.paging import encode_cursor
from libs.settings import PROJECT_ROOT
from tests.helpers import fresh_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

ST = Path(sys.executable).parent / "st"
HOOKS = Path(__file__).parent / "schemathesis_formats.py"
EXAMPLES = 25
SEED = 20261206
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)

# A place in each list (operation id -> the list's name and a key of its order), as its `Link` header would carry.
CURSORS = {
    "department_worklist": ("worklist", (LONG_AGO, "0")),
    "city_queue": ("queue", (LONG_AGO, "0")),
    "list_visits": ("visits", (LONG_AGO, "0")),
    "enterprise_audit": ("audit", (datetime(9000, 1, 1, tzinfo=UTC), "0")),
    "government_lists": ("lists", (0, "0")),
    "list_departments": ("departments", (0, "0")),
    "routing_rules": ("rules", (0, "0")),
    "clocks_at_risk": ("at-risk", (LONG_AGO, "0")),
    "calendars": ("calendars", (0, "0")),
    "notifications": ("deliveries", (LONG_AGO, "0")),
}

# The keys each service's callers hold; every one of them runs the whole document.
KEYS = {
    "intake": ["channel:wechat", "channel:staff_visit", "admin"],
    "router": ["department:coord", "department:nanshan-finance", "operator", "admin"],
    "sla": ["operator", "department:nanshan-finance"],
    "notify": ["admin", "department:nanshan-finance", "liaison:zhou-min"],
    "stats": ["operator", "department:nanshan-finance"],
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "conformance-stack")
    yield s
    s.stop()


def config(folder: Path) -> Path:
    """A schemathesis.toml giving each paged list's operation a cursor of its own list."""
    lines = []
    for operation, (name, key) in CURSORS.items():
        lines += [
            "[[operations]]",
            f'include-operation-id = "{operation}"',
            f'parameters = {{ "query.cursor" = "{encode_cursor(name, key)}" }}',
            "",
        ]
    path = folder / "schemathesis.toml"
    path.write_text("\n".join(lines))
    return path


@pytest.mark.parametrize("service", list(KEYS))
def test_every_check_of_schemathesis_finds_nothing_in_the_document(stack, service, tmp_path):
    failed = []
    for n, scope in enumerate(KEYS[service]):
        done = subprocess.run(
            [
                str(ST),
                "--config-file",
                str(config(tmp_path)),
                "run",
                f"{stack.url(service)}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED + n),
                "--workers",
                "1",
                "--no-shrink",
                "--request-timeout",
                "30",
                "-H",
                f"X-Api-Key: {stack.keys[scope]}",
            ],
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "PYTHONPATH": str(PROJECT_ROOT)},
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            failed.append(f"--- {service} as {scope} (exit {done.returncode}):\n{done.stdout[-12000:]}{done.stderr}")
    assert not failed, "\n".join(failed)
