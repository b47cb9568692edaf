"""E-mail addresses in one checked form: one mailbox, by the syntax of RFC 5321/5322 (the email-validator library).

A free pattern let `a,b@x.org` through, which a mail server reads as two recipients.
"""

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic.json_schema import JsonDict


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# What the OpenAPI documents state of an e-mail address a client sends: an address (`format: email`) whose domain is
# none of the special-use names (RFC 6761: .test, .invalid, .localhost, ...) that no mail reaches.
MAILBOX_SCHEMA: JsonDict = {
    "format": "email",
    "pattern": "^(?![^@]*@(?:[^@]*\\.)?(?:"
    + "|".join(_any_case(name) for name in SPECIAL_USE_DOMAIN_NAMES)
    + ")\\.?$)",
}


def mailbox(raw: str | None) -> str | None:
    """`raw` as one normalised mailbox (None stays None); ValueError saying what is wrong. No DNS lookup: at the
    door an address is judged by its form, and delivery says the rest."""
    if raw is None:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
