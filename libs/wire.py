"""What clients send, taken as strictly as the OpenAPI documents say it.

Pydantic's lax mode takes more than JSON Schema describes: `true` and `"3"` for an integer, `"yes"` and `1` for a
boolean, `0.5` (seconds since 1970) or a day without a time for a datetime. A request the document calls invalid
must be refused (a client relying on the extra forms breaks on any other implementation of the document), so the
request models use these types for their integers, booleans, instants and days.
"""

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BeforeValidator, Strict

# RFC 3339's date-time (what `format: date-time` means): a date, `T`, a time with seconds, an offset or Z.
_INSTANT = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
_FRACTION = re.compile(r"\.[0-9]+")
# RFC 3339's full-date (`format: date`).
_DAY = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")


def integral(value: Any) -> Any:
    """A JSON number without a fraction (`2.0`) as the integer it is; anything else as it came, for strict checking."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _instant(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _INSTANT.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with its offset, e.g. 2026-12-10T18:00:00+08:00")
    # Microseconds are as fine as a time is kept: further digits are dropped.
    return _FRACTION.sub(lambda m: m.group(0)[:7], value.upper())


def _day(value: Any) -> Any:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError("must be a date, e.g. 2026-12-10")
    return value


# A JSON integer: 25, or 25.0, never true or "25".
Integer = Annotated[int, Strict(), BeforeValidator(integral)]
# (Bounds on an optional one go before the validator, `Annotated[int, Strict(), Ge(1), BeforeValidator(integral)]`,
# or the document shows them as `ge` instead of `minimum`.)
# A JSON boolean: true or false, never 1 or "yes".
Boolean = Annotated[bool, Strict()]
# An instant with its offset, in RFC 3339 (`format: date-time`): never a number, a naive time or a day alone.
Instant = Annotated[AwareDatetime, BeforeValidator(_instant)]
# A day in RFC 3339 (`format: date`): never a number or a time.
Day = Annotated[date, BeforeValidator(_day)]
