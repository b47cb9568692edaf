"""One-time codes that prove a company holds the phone it gives, lost links sent again, and the limits on asking.

A public form is abused: codes are six digits, void after ten minutes or five wrong tries,
and every request counts against fixed-window limits per phone and per client address.
Phones and addresses are stored only as keyed hashes; the code itself only as its HMAC.
"""

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs import phones

CODE_TTL = timedelta(minutes=10)
MAX_TRIES = 5


@dataclass(frozen=True)
class Limit:
    """At most `count` requests of kind `name` per `seconds` for one phone or one address."""

    name: str
    count: int
    seconds: int


def normalized(phone: str) -> str:
    """The phone in E.164, as intake's request models give it; one stored before that may not parse, and stays as is."""
    try:
        return phones.e164(phone)
    except ValueError:
        return phone


def keyed(secret: str, kind: str, value: str) -> str:
    """A keyed hash standing for a phone or an address in keys and documents."""
    return hmac.new(secret.encode(), f"{kind}\x00{value}".encode(), hashlib.sha256).hexdigest()[:32]


def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(1_000_000):06d}"


def window(limit: Limit, subject: str, now: datetime) -> tuple[str, datetime]:
    """The id of the current window of `limit` for `subject`, and when it ends."""
    start = int(now.timestamp()) // limit.seconds * limit.seconds
    return f"{limit.name}:{subject}:{start}", datetime.fromtimestamp(start + limit.seconds, tz=now.tzinfo)


async def spend(db: AsyncDatabase, limits: list[tuple[Limit, str]], now: datetime) -> int | None:
    """Count one request against each (limit, subject); the seconds to wait if one is used up, else None."""
    wait = 0
    for limit, subject in limits:
        window_id, ends = window(limit, subject, now)
        try:
            # A window still under its count takes the increment; a full one matches nothing, and the
            # upsert's insert of the same id then fails: one statement, no read.
            await db.limits.update_one(
                {"_id": window_id, "n": {"$lt": limit.count}},
                {"$inc": {"n": 1}, "$setOnInsert": {"until": ends}},
                upsert=True,
            )
        except DuplicateKeyError:
            wait = max(wait, int((ends - now).total_seconds()) + 1)
    return wait or None


async def forget_old_windows(db: AsyncDatabase, now: datetime) -> None:
    """Drop windows that have ended and codes that have expired."""
    await db.limits.delete_many({"until": {"$lt": now}})
    await db.codes.delete_many({"expires_at": {"$lt": now}})


async def issue(db: AsyncDatabase, secret: str, phone: str, now: datetime) -> tuple[str, str, datetime]:
    """A new code for `phone` (any earlier one is void): (phone key, code, expiry)."""
    key = keyed(secret, "phone", normalized(phone))
    code, expires = new_code(), now + CODE_TTL
    digest = keyed(secret, "code", f"{key}:{code}")
    await db.codes.replace_one({"_id": key}, {"_id": key, "digest": digest, "expires_at": expires, "tries": 0}, True)
    return key, code, expires


async def check(db: AsyncDatabase, secret: str, phone: str, code: str, now: datetime) -> bool:
    """Whether `code` is the live code of `phone`; a right code is used up, a wrong one costs a try."""
    key = keyed(secret, "phone", normalized(phone))
    doc = await db.codes.find_one({"_id": key})
    if doc is None or _aware(doc["expires_at"], now) < now or doc["tries"] >= MAX_TRIES:
        return False
    if hmac.compare_digest(doc["digest"], keyed(secret, "code", f"{key}:{code.strip()}")):
        await db.codes.delete_one({"_id": key})
        return True
    await db.codes.update_one({"_id": key}, {"$inc": {"tries": 1}})
    return False


def phone_of(record: dict[str, Any]) -> str | None:
    """The contact phone of an appeal as intake stored its submission."""
    try:
        phone: str = json.loads(record["event"])["data"]["contact"]["phone"]
    except (KeyError, TypeError, ValueError):
        return None
    return phone


def _aware(at: datetime, like: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=like.tzinfo)
