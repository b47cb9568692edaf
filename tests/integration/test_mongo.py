"""Guarded updates on the real database: the document computed after an update is the one stored."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pymongo import AsyncMongoClient

from libs.ids import new_id
from libs.mongo import apply_update, update_guarded

SHANGHAI = timezone(timedelta(hours=8))

UPDATES = {
    "set, inc, unset": {"$set": {"status": "accepted", "accepted_at": datetime(2026, 3, 3, 9, 0, 0, 123456, SHANGHAI),
                                 "declined_by": [], "resolution": {"at": datetime(2026, 3, 3, 1, 2, 3, 999999, UTC)}},
                        "$inc": {"version": 1}, "$unset": {"claim": "", "absent": ""}},
    "push each": {"$push": {"outbox": {"$each": [{"id": "b"}, {"id": "c"}]}}, "$inc": {"version": 1}},
    "push with slice": {"$push": {"seen": {"$each": ["e3", "e4"], "$slice": -3}}},
    "push to a new field": {"$push": {"fresh": {"$each": [1]}}, "$set": {"outbox_since": datetime.now(UTC)}},
}


@pytest.mark.parametrize("update", UPDATES.values(), ids=UPDATES.keys())
async def test_the_document_after_a_guarded_update_is_what_the_database_holds(real_servers, update):
    client = AsyncMongoClient(real_servers.mongodb_uri, tz_aware=True)
    collection = client.mongo_test.docs
    doc = {"_id": new_id(), "version": 3, "status": "routed", "claim": "token", "outbox": [{"id": "a"}],
           "seen": ["e1", "e2"], "submitted_at": datetime(2026, 3, 3, 1, 0, tzinfo=UTC)}
    await collection.insert_one(doc)
    after = await update_guarded(collection, doc, {"version": 3}, update)
    assert after == await collection.find_one({"_id": doc["_id"]})
    if "version" in update.get("$inc", {}):
        assert await update_guarded(collection, doc, {"version": 3}, update) is None, "a stale version matches nothing"
    await client.close()


@pytest.mark.parametrize("update", [{"$set": {"a.b": 1}}, {"$addToSet": {"tags": "x"}}])
def test_apply_update_refuses_what_it_cannot_compute(update):
    with pytest.raises(ValueError):
        apply_update({"_id": "x"}, update)
