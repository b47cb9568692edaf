"""E-mail addresses in one checked form: one mailbox, by the syntax of RFC 5321/5322 (the email-validator library).

A free pattern let `a,b@x.org` through, which a mail server reads as two recipients.
"""

from email_validator import EmailNotValidError, validate_email


def mailbox(raw: str | None) -> str | None:
    """`raw` as one normalised mailbox (None stays None); ValueError saying what is wrong. No DNS lookup: at the
    door an address is judged by its form, and delivery says the rest."""
    if raw is None:
        return None
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
