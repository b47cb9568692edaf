"""The clerk's session, sealed in its cookie, and the CSRF tokens of every form.

A session is encrypted and authenticated (Fernet) with a key derived from
WEB_SESSION_SECRET, so the department key it carries is never readable by the
browser. It is sealed again on every request: the seal's own timestamp is the
idle clock, `signed_in` the absolute one.
"""

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

SESSION_COOKIE = "clerk"
CSRF_COOKIE = "csrf"
PORTAL_COOKIE = "portal"


@dataclass
class Clerk:
    """Who is signed in to the workbench: a name, a department, its key."""

    name: str
    department: str
    key: str
    signed_in: float


class Sealer:
    """Seals and opens session cookies; signs CSRF tokens."""

    def __init__(self, secret: str) -> None:
        digest = hashlib.sha256(b"appeals-web-session\x00" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        self._csrf_key = hashlib.sha256(b"appeals-web-csrf\x00" + secret.encode()).digest()
        self._ref_key = hashlib.sha256(b"appeals-web-channel-ref\x00" + secret.encode()).digest()

    def seal(self, clerk: Clerk, at: float | None = None) -> str:
        """The session as an opaque cookie value, sealed now (or `at`, a Unix time)."""
        return self.seal_value(asdict(clerk), at)

    def seal_value(self, value: dict[str, Any], at: float | None = None) -> str:
        """Any small value as an opaque, tamper-proof cookie; its seal's time starts its clock."""
        data = json.dumps(value).encode()
        return self._fernet.encrypt_at_time(data, int(time.time() if at is None else at)).decode()

    def open_value(self, sealed: str | None, ttl_seconds: float) -> dict[str, Any] | None:
        """The value of a cookie sealed within `ttl_seconds`, or None."""
        if not sealed:
            return None
        try:
            value: dict[str, Any] = json.loads(self._fernet.decrypt(sealed.encode(), ttl=int(ttl_seconds)))
        except (InvalidToken, ValueError):
            return None
        return value

    def open(self, value: str | None, idle_seconds: float, max_seconds: float) -> Clerk | None:
        """The clerk of a cookie still within both limits, or None."""
        data = self.open_value(value, idle_seconds)
        try:
            clerk = Clerk(**data) if data is not None else None
        except TypeError:
            return None
        return clerk if clerk is not None and time.time() - clerk.signed_in < max_seconds else None

    def channel_ref(self, portal_session: str, body: dict[str, Any]) -> str:
        """The channel_ref of an appeal sent from this browser's portal session with this body.

        Made here, never taken from the form: the same body from the same browser (a double click, a
        reload of the answer) is the same appeal, any other body a new one, and no other browser can
        name it, because the session is a random value only the browser's sealed cookie holds.
        """
        content = json.dumps({k: v for k, v in body.items() if k != "channel_ref"}, sort_keys=True)
        mac = hmac.new(self._ref_key, f"{portal_session}\x00{content}".encode(), hashlib.sha256)
        return "web-" + mac.hexdigest()[:40]

    def csrf_token(self, cookie: str) -> str:
        """The token a form carries for this browser's CSRF cookie."""
        return hmac.new(self._csrf_key, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str | None, token: str | None) -> bool:
        """The form's token belongs to this browser's cookie."""
        return bool(cookie and token) and hmac.compare_digest(self.csrf_token(cookie or ""), token or "")


def new_csrf_cookie() -> str:
    """A fresh random value for a browser's CSRF cookie."""
    return secrets.token_urlsafe(24)


def new_portal_session() -> str:
    """A fresh random id of a browser's portal session (kept sealed in its cookie)."""
    return secrets.token_urlsafe(24)
