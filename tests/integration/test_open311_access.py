"""Who may list Open311 requests, on the real broker and database: anyone looks requests up by id, only a key lists.

An anonymous list would tell anyone every appeal's service, department and status; a channel's key lists that
channel's requests and no other's.
"""

import random

from tests.helpers import open311_form

LIST = "/open311/v2/requests.json"


async def _create(p, channel: str) -> tuple[str, str]:
    """A request posted through `channel`'s key; (its id, its description)."""
    form = open311_form(random.randrange(10**6), api_key=p.keys[f"channel:{channel}"], jurisdiction_id="shenzhen")
    created = await p.intake.post(LIST, data=form)
    assert created.status_code == 201, created.text
    return created.json()[0]["service_request_id"], form["description"]


async def _listed(p, **params: str) -> dict[str, dict]:
    answer = await p.intake.get(LIST, params=params)
    assert answer.status_code == 200, answer.text
    return {r["service_request_id"]: r for r in answer.json()}


async def test_without_a_key_requests_are_looked_up_by_id_and_never_listed(platform):
    first, _ = await _create(platform, "hotline_12345")
    second, _ = await _create(platform, "app")
    for params in ({}, {"service_code": "financing"}, {"status": "open"}, {"service_request_id": " , "}):
        refused = await platform.intake.get(LIST, params=params)
        assert refused.status_code == 403, (params, refused.text)
        ((error,),) = [refused.json()]
        assert error["code"] == 403
        assert "api_key" in error["description"] and "service_request_id" in error["description"]
    one = await _listed(platform, service_request_id=first)
    assert list(one) == [first] and one[first]["description"] is None, "by id, without company data"
    both = await _listed(platform, service_request_id=f"{first}, {second}", jurisdiction_id="shenzhen")
    assert set(both) == {first, second} and all(r["status"] == "open" for r in both.values())


async def test_a_channels_key_lists_that_channels_requests_only(platform):
    hotline, described = await _create(platform, "hotline_12345")
    app, _ = await _create(platform, "app")
    by_hotline = await _listed(platform, api_key=platform.keys["channel:hotline_12345"], service_code="financing")
    assert hotline in by_hotline and app not in by_hotline, "channel A's key does not list channel B's requests"
    assert by_hotline[hotline]["description"] == described, "its own requests in full"
    by_app = await _listed(platform, api_key=platform.keys["channel:app"], status="open")
    assert app in by_app and hotline not in by_app
    other_by_id = await _listed(platform, api_key=platform.keys["channel:app"], service_request_id=hotline)
    assert other_by_id[hotline]["description"] is None, "another channel's request by id: no company data"
    everything = await _listed(platform, api_key=platform.keys["operator"])
    assert {hotline, app} <= set(everything), "an operator lists every channel's"


async def test_a_department_key_or_a_wrong_key_lists_nothing(platform):
    hotline, _ = await _create(platform, "hotline_12345")
    for key, words in ((platform.keys["department:nanshan-finance"], "department"), ("ak_not-a-key", "not valid")):
        refused = await platform.intake.get(LIST, params={"api_key": key})
        assert refused.status_code == 403 and words in refused.json()[0]["description"]
    by_id = await _listed(platform, api_key=platform.keys["department:nanshan-finance"], service_request_id=hotline)
    assert list(by_id) == [hotline], "a lookup by id needs no particular key"
