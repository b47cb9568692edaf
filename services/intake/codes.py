"""One-time codes that prove a company holds the phone it gives, lost links sent again, and the limits on asking.

A public form is abused: codes are six digits, void after ten minutes or five wrong tries,
and every request counts against fixed-window limits per phone and per client address.
Phones and addresses are stored only as keyed hashes; the code itself only as its HMAC.
Every count is one guarded statement, so that concurrent requests cannot pass a limit together.
"""

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from libs import phones
from services.intake.privacy import stored_contact

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


def client_subject(address: str) -> str:
    """What a per-address limit counts: an IPv4 address, or the /64 network of an IPv6 one.

    One IPv6 subscriber holds a whole /64 (2^64 addresses), so an address of it would be no limit.
    ValueError if `address` is not an IP address.
    """
    ip = ipaddress.ip_address(address.strip())
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


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
    """Whether `code` is the live code of `phone`; a right code is used up, and any check costs one of its tries.

    Two guarded statements, never a read and then a write. A check first takes a try, through an update that
    matches only a live code under MAX_TRIES tries: of any number of concurrent checks, at most MAX_TRIES are
    compared at all, and fifty concurrent wrong ones void the code. Then the code verifies only through the
    delete that removes it: of concurrent right checks, the one whose delete succeeded. (Deleting first and
    counting wrong tries after would compare every concurrent guess before the first one counted.)
    """
    key = keyed(secret, "phone", normalized(phone))
    live = {"_id": key, "expires_at": {"$gt": now}}
    taken = await db.codes.update_one({**live, "tries": {"$lt": MAX_TRIES}}, {"$inc": {"tries": 1}})
    if taken.matched_count != 1:
        return False  # no code, expired, or its tries used up
    used = await db.codes.delete_one({**live, "digest": keyed(secret, "code", f"{key}:{code.strip()}")})
    return used.deleted_count == 1


def phone_of(record: dict[str, Any]) -> str | None:
    """The contact phone of an appeal as intake keeps it; None once erased."""
    contact = stored_contact(record)
    return contact.phone if contact else None
