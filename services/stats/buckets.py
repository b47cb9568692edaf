"""Where stats counts: counter names, hour and day buckets, latency sketches, and sums of counts; pure.

Buckets are hours in UTC (`h:2026-03-03T14`: counts, `l:...`: latency sketches)
plus one all-time document `t` behind the Prometheus metrics. Each hour also adds
into the bucket of the local day its UTC start falls on (`hd:2026-03-04`, `ld:...`,
in stats' time zone), so a report over whole days reads one bucket per day instead
of 24 (`day_of`, `cover`).
"""

import math
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from urllib.parse import unquote
from zoneinfo import ZoneInfo

Counts = dict[str, dict[str, int]]

# A counter's name is its parts joined by '|', and it is a MongoDB field name: a dot would nest it, a leading '$'
# is refused, and a '|' inside a part would split it wrongly when read. Each part is percent-encoded for those (and
# for '%' itself), which leaves every name made of configured codes as it always was, so older buckets still read.
_RESERVED = str.maketrans({"%": "%25", ".": "%2E", "$": "%24", "|": "%7C", "\x00": "%00"})
TOTALS = "t"
# Latency sketch: logarithmic bins with 1 % relative accuracy (the DDSketch mapping).
_GAMMA = (1 + 0.01) / (1 - 0.01)
_LOG_GAMMA = math.log(_GAMMA)
HOUR = timedelta(hours=1)


def encode(part: object) -> str:
    """One part of a counter's name (or a clock's key in its appeal's document), encoded as `counter` does."""
    return str(part).translate(_RESERVED)


@lru_cache(maxsize=16384)
def counter(*parts: object) -> str:
    """A counter's name from its parts, each encoded so that no value can nest, break or split the name."""
    return "|".join(encode(part) for part in parts)


def parts(name: str) -> list[str]:
    """The parts of a counter's name, decoded: the inverse of `counter`."""
    return [unquote(part) if "%" in part else part for part in name.split("|")]


def hour_of(at: datetime) -> str:
    """The hour bucket's name part: '2026-03-03T14' in UTC."""
    # Cached: an appeal's counts are taken before and after each of its events, from the same instants.
    return at.astimezone(UTC).isoformat()[:13]


def ms(at: datetime) -> datetime:
    """`at` as MongoDB stores it (milliseconds), so counts from a reloaded document match."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


@lru_cache(maxsize=8192)
def day_span(day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
    """[start, end) in UTC of a local day that can have a day bucket, or None.

    Only a day made of whole UTC hours, each starting on that day, has one: its
    midnights fall on UTC hours and local time runs forward through it. Where the
    offset is not whole hours (Asia/Kolkata; Australia/Lord_Howe outside summer
    time; any zone's local mean time) an hour straddles local midnight, so those
    days have no bucket and are always read hour by hour. Daylight saving days in
    whole-hour zones have one, of 23 or 25 hours.
    """
    start = datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=tz).astimezone(UTC)
    if end <= start or any(at.minute or at.second or at.microsecond for at in (start, end)):
        return None
    hours = (end - start) // HOUR
    if any((start + i * HOUR).astimezone(tz).date() != day for i in range(hours)):
        return None
    return start, end


@lru_cache(maxsize=65536)
def day_of(bucket: str, tz: ZoneInfo) -> str | None:
    """The day bucket an hour bucket adds into ('h:2026-03-03T16' -> 'hd:2026-03-04' in Shanghai), or None."""
    kind, _, hour = bucket.partition(":")
    if kind not in ("h", "l"):
        return None
    at = datetime.fromisoformat(hour + ":00+00:00")
    day = at.astimezone(tz).date()
    span = day_span(day, tz)
    # An hour of this date outside its span (local time stepping back across midnight) stays hourly only.
    return f"{kind}d:{day.isoformat()}" if span and span[0] <= at < span[1] else None


def with_days(delta: Counts, tz: ZoneInfo) -> Counts:
    """`delta` plus the same changes added into the day buckets of its hours."""
    out = {bucket: dict(fields) for bucket, fields in delta.items()}
    for bucket, fields in delta.items():
        day = day_of(bucket, tz)
        if day is None:
            continue
        target = out.setdefault(day, {})
        for name, n in fields.items():
            target[name] = target.get(name, 0) + n
    return out


def cover(start: datetime, end: datetime, tz: ZoneInfo, since: date | None) -> tuple[list[str], list[str]]:
    """(days, hours): name parts of the day and hour buckets holding exactly the hours of [start, end).

    The hours are those `hour_of(start)` <= hour < `hour_of(end)`, as an hourly
    read takes them. A day is used only when all of its span lies in them and it
    is not before `since` (the first day whose bucket holds every hour; None: none does).
    """
    at = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    stop = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    days: list[str] = []
    hours: list[str] = []
    while at < stop:
        day = at.astimezone(tz).date()
        span = day_span(day, tz) if since is not None and day >= since else None
        if span and span[0] == at and span[1] <= stop:
            days.append(day.isoformat())
            at = span[1]
        else:
            hours.append(hour_of(at))
            at += HOUR
    return days, hours


def sketch_key(seconds: float) -> int:
    """The logarithmic bin holding `seconds` (anything under a second counts as one)."""
    return math.ceil(math.log(max(seconds, 1.0)) / _LOG_GAMMA)


def sketch_value(key: int) -> float:
    """The representative value of bin `key`, within 1 % of every value in it."""
    return 2 * _GAMMA**key / (_GAMMA + 1)


def difference(after: Counts, before: Counts) -> Counts:
    """after - before, leaving out what did not change."""
    out: Counts = {}
    for bucket in after.keys() | before.keys():
        a, b = after.get(bucket, {}), before.get(bucket, {})
        changed = {f: a.get(f, 0) - b.get(f, 0) for f in a.keys() | b.keys() if a.get(f, 0) != b.get(f, 0)}
        if changed:
            out[bucket] = changed
    return out


def total(deltas: list[Counts]) -> Counts:
    """The sum of several counts or changes, leaving out what sums to nothing."""
    out: Counts = {}
    for delta in deltas:
        for bucket, fields in delta.items():
            into = out.setdefault(bucket, {})
            for name, n in fields.items():
                into[name] = into.get(name, 0) + n
    kept = {bucket: {name: n for name, n in fields.items() if n} for bucket, fields in out.items()}
    return {bucket: fields for bucket, fields in kept.items() if fields}
