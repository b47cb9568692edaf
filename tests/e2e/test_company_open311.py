"""The company's side and the Open311 facade on the running stack: real servers, separate service processes.

`georeport` is an Open311 GeoReport v2 client from PyPI, used as is. It cannot create
requests (no Python 3 client on PyPI can: `open311` 1.1 and `three` 0.8 are Python 2
only), so creation is posted form-encoded exactly as those clients send it.
"""

import time

import httpx
import pytest
import requests
from georeport import GeoReport

from tests.helpers import fresh_stack, open311_form


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = fresh_stack(tmp_path_factory, "open311-stack", only=("intake", "router", "sla"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(stack):
    return GeoReport(stack.url("intake") + "/open311/v2", jurisdiction="shenzhen")


def request_form(stack, n: int, **extra) -> dict[str, str]:
    return open311_form(9000 + n, api_key=stack.keys["channel:hotline_12345"], jurisdiction_id="shenzhen", **extra)


def create(stack, form: dict[str, str]) -> requests.Response:
    return requests.post(stack.url("intake") + "/open311/v2/requests.json", data=form, timeout=30)


def channel_list(stack, **params: str) -> list[dict]:
    """GET requests.json with the channel's key: a list needs one, and the `georeport` client sends none on a GET."""
    answer = requests.get(
        stack.url("intake") + "/open311/v2/requests.json",
        params={"api_key": stack.keys["channel:hotline_12345"], "jurisdiction_id": "shenzhen", **params},
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()


def wait(predicate, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def act(stack, appeal_id: str, department: str, **body) -> httpx.Response:
    return httpx.post(
        stack.url("router") + f"/v1/appeals/{appeal_id}/actions",
        json=body,
        headers={"X-Api-Key": stack.keys[f"department:{department}"]},
        timeout=30,
    )


def test_discovery_services_and_definitions_through_an_unmodified_client(stack, client):
    discovery = httpx.get(stack.url("intake") + "/open311/v2/discovery.json").json()
    assert discovery["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    services = client.get_service_list()
    assert len(services) == 15 and {"financing", "customs", "other"} <= {s["service_code"] for s in services}
    definition = client.get_service_definition("customs")
    required = {a["code"] for a in definition["attributes"] if a["required"]}
    assert required == {"uscc", "enterprise_name", "employees", "industry", "district"}
    with pytest.raises(requests.HTTPError) as caught:
        client.get_service_definition("parking")
    assert caught.value.response.status_code == 404
    assert caught.value.response.json() == [{"code": 404, "description": "service_code 'parking' not found"}]


def test_a_request_is_created_once_routed_and_read_back_with_its_deadline(stack, client):
    form = request_form(stack, 1)
    created = create(stack, form)
    assert created.status_code == 201, created.text
    request_id = created.json()[0]["service_request_id"]
    assert create(stack, form).json()[0]["service_request_id"] == request_id, "the same post, the same appeal"
    # The Python 2 `open311` client puts api_key and jurisdiction_id in the query string.
    in_query = {k: v for k, v in request_form(stack, 2).items() if k not in ("api_key", "jurisdiction_id")}
    second = requests.post(
        stack.url("intake") + "/open311/v2/requests.json",
        data=in_query,
        timeout=30,
        params={"api_key": stack.keys["channel:hotline_12345"], "jurisdiction_id": "shenzhen"},
    )
    assert second.status_code == 201, second.text

    # Routing and the clock reach intake on two topics, so either may be folded in first: wait for both.
    seen = wait(
        lambda: (r := client.get_service_request(request_id))["expected_datetime"] and r["agency_responsible"] and r,
        "routing and the resolution clock",
    )
    assert seen["service_code"] == "financing" and seen["status"] == "open"
    assert seen["agency_responsible"] and seen["requested_datetime"]
    assert seen["description"] is None, "without the channel's key no company data is shown"
    with_key = httpx.get(
        stack.url("intake") + f"/open311/v2/requests/{request_id}.json",
        params={"api_key": stack.keys["channel:hotline_12345"]},
    ).json()[0]
    assert with_key["description"] == form["description"]

    assert [r["service_request_id"] for r in client.get_service_requests(service_request_id=request_id)] == [request_id]
    with pytest.raises(requests.HTTPError) as caught:
        client.get_service_requests(service_code="financing", status="open")
    assert caught.value.response.status_code == 403, "without a key nobody lists the city's requests"
    assert "api_key" in caught.value.response.json()[0]["description"]
    listed = channel_list(stack, service_code="financing", status="open")
    assert {request_id, second.json()[0]["service_request_id"]} <= {r["service_request_id"] for r in listed}
    assert request_id not in {r["service_request_id"] for r in channel_list(stack, status="closed")}
    assert request_id not in {r["service_request_id"] for r in channel_list(stack, service_code="tax")}


def test_spec_errors_for_a_missing_key_an_unknown_service_and_an_unknown_request(stack, client):
    form = request_form(stack, 3)
    del form["api_key"]
    missing_key = create(stack, form)
    assert missing_key.status_code == 403
    assert missing_key.json()[0]["code"] == 403 and "api_key" in missing_key.json()[0]["description"]
    wrong_key = create(stack, {**form, "api_key": "ak_not-a-key"})
    assert wrong_key.status_code == 403
    department_key = create(stack, {**form, "api_key": stack.keys["department:nanshan-finance"]})
    assert department_key.status_code == 403 and "not a channel" in department_key.json()[0]["description"]
    unknown_service = create(stack, {**request_form(stack, 4), "service_code": "parking"})
    assert unknown_service.status_code == 404 and unknown_service.json()[0]["code"] == 404
    bad_fields = create(stack, {**request_form(stack, 5), "attribute[uscc]": "123", "phone": ""})
    assert bad_fields.status_code == 400
    assert "attribute[uscc]" in bad_fields.json()[0]["description"] and "phone" in bad_fields.json()[0]["description"]
    with pytest.raises(requests.HTTPError) as caught:
        client.get_service_request("01JNOSUCHREQUEST0000000000")
    assert caught.value.response.status_code == 404 and caught.value.response.json()[0]["code"] == 404
    with pytest.raises(requests.HTTPError) as caught:
        channel_list(stack, start_date="2026-01-01T00:00:00Z", end_date="2026-06-01T00:00:00Z")
    assert caught.value.response.status_code == 400 and "90 days" in caught.value.response.json()[0]["description"]


def test_the_company_sees_its_deadlines_pause_for_information_and_closes_with_feedback(stack, client):
    created = create(stack, request_form(stack, 6)).json()[0]
    appeal_id, token = created["service_request_id"], created["status_token"]
    status_url = stack.url("intake") + f"/v1/appeals/{appeal_id}"
    company = {"X-Status-Token": token}

    def clock(kind, state):
        view = httpx.get(status_url, headers=company).json()
        return next((d for d in view["deadlines"] if d["clock"] == kind and d["state"] == state), None)

    def routed_with_clocks():
        # The clocks and the routing reach intake as separate events on two topics: wait for all of them.
        view = httpx.get(status_url, headers=company).json()
        shown = {d["clock"] for d in view["deadlines"]} >= {"scope", "response", "resolution"}
        return view["department"] and shown and view

    lead = wait(routed_with_clocks, "the lead and its three clocks to show")["department"]
    resolution = clock("resolution", "running")
    assert resolution["due_at"] and 0 < resolution["remaining_seconds"] <= 72 * 3600

    assert act(stack, appeal_id, lead, action="accept").status_code == 200
    assert act(stack, appeal_id, lead, action="request_info", note="Send the loan contract").status_code == 200
    paused = wait(lambda: clock("resolution", "paused"), "the resolution clock to pause")
    assert paused["due_at"] is None and paused["remaining_seconds"] > 0
    wait(lambda: httpx.get(status_url, headers=company).json()["status"] == "info_requested", "info_requested")
    sent = httpx.post(status_url + "/info", json={"information": "Contract 2026-0042"}, headers=company)
    assert sent.status_code == 202, sent.text
    wait(lambda: clock("resolution", "running"), "the resolution clock to resume")

    wait(
        lambda: act(stack, appeal_id, lead, action="resolve", resolution="Repayment deferred").status_code == 200,
        "the department to resolve once the information arrived",
    )
    wait(lambda: client.get_service_request(appeal_id)["status"] == "closed", "Open311 to show it closed")
    wait(lambda: httpx.get(status_url, headers=company).json()["status"] == "resolved", "intake to show resolved")
    feedback = httpx.post(status_url + "/feedback", json={"resolved": True, "satisfaction": 5}, headers=company)
    assert feedback.status_code == 202, feedback.text
    assert (
        httpx.post(status_url + "/feedback", json={"resolved": True, "satisfaction": 4}, headers=company).status_code
        == 409
    )
    done = wait(
        lambda: (v := httpx.get(status_url, headers=company).json())["status"] == "closed" and v, "the appeal to close"
    )
    assert done["resolution"] == "Repayment deferred"
    wait(lambda: clock("resolution", "met"), "the resolution clock to show met")
