"""`make demo` says in a sentence, within seconds, what keeps it from playing."""

import json
import time

import pytest

from devstack.demo import Scenario, appeal_bodies, main
from devstack.servers import free_port


def test_a_demo_against_a_stack_that_does_not_answer_stops_at_once_saying_which(tmp_path):
    manifest = tmp_path / "stack.json"
    services = {name: {"url": f"http://127.0.0.1:{free_port()}"} for name in ("intake", "router")}
    manifest.write_text(json.dumps({"services": services, "keys": {}}))
    began = time.monotonic()
    with pytest.raises(SystemExit) as stopped:
        main(manifest, Scenario(appeals=2, financing=1, micro=1, small=1, resolved=1))
    assert time.monotonic() - began < 15
    assert str(stopped.value).startswith("the demo stopped: intake, router of the stack in stack.json do not answer")


def test_each_run_s_appeals_are_its_own():
    first, second = appeal_bodies(Scenario(), "1"), appeal_bodies(Scenario(), "2")
    assert {b["title"] for _, b in first}.isdisjoint({b["title"] for _, b in second})
    assert [b["enterprise"]["uscc"] for _, b in first] == [b["enterprise"]["uscc"] for _, b in second]
