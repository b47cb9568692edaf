"""Hashed, scoped API keys.

A key is a random token handed to one client; only its SHA-256 is stored. Each key
has exactly one scope: `channel:<name>`, `department:<code>`, `operator` or `admin`.
Keys are high-entropy, so a plain digest is enough (no password hashing needed).
"""

import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

SCOPE_KINDS = ("channel", "department", "liaison", "operator", "admin")

# Every protected operation declares the key, so the OpenAPI documents say how to authenticate and Swagger's
# Authorize sends it; `authenticate` reads the same header and answers 401 or 403 itself (auto_error off).
API_KEY = APIKeyHeader(
    name="X-Api-Key",
    scheme_name="ApiKey",
    description="A key of one scope (`channel:<name>`, `department:<code>`, `liaison:<id>`, `operator`, `admin`).",
    auto_error=False,
)
ApiKey = Annotated[str | None, Security(API_KEY)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a scope kind and, for channels and departments, which one."""

    kind: str
    name: str | None
    label: str

    @property
    def owner(self) -> str:
        """The channel or department the key acts for; only keys of those scopes reach code that asks."""
        if self.name is None:
            raise HTTPException(403, f"a {self.kind} key does not act for a channel or a department")
        return self.name


def hash_key(key: str) -> str:
    """Digest under which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A fresh API key to hand out once."""
    return "ak_" + secrets.token_urlsafe(32)


def parse_scope(scope: str) -> tuple[str, str | None]:
    """Split `department:nanshan-finance` into its kind and name; raises ValueError if malformed."""
    kind, _, name = scope.partition(":")
    if kind not in SCOPE_KINDS:
        raise ValueError(f"unknown scope kind {kind!r} in {scope!r}")
    if kind in ("channel", "department", "liaison") and not name:
        raise ValueError(f"scope {scope!r} needs a name after the colon")
    return kind, name or None


class KeyStore:
    """Looks up principals by the digest of the presented key."""

    def __init__(self, entries: list[dict[str, str]]) -> None:
        self._by_digest: dict[str, Principal] = {}
        for entry in entries:
            kind, name = parse_scope(entry["scope"])
            self._by_digest[entry["sha256"]] = Principal(kind, name, entry.get("label", entry["scope"]))

    @classmethod
    def from_file(cls, path: Path | None) -> "KeyStore":
        """Load `[{"scope", "sha256", "label"}]`; no file means no key is valid."""
        if path is None or not path.exists():
            return cls([])
        return cls(json.loads(path.read_text()))

    def lookup(self, key: str | None) -> Principal | None:
        """The principal owning `key`, or None."""
        if not key:
            return None
        return self._by_digest.get(hash_key(key))


def authenticate(request: Request, *kinds: str) -> Principal:
    """The caller of `request` if its key has one of `kinds`; 401 without a valid key, 403 otherwise."""
    store: KeyStore = request.app.state.keys
    principal = store.lookup(request.headers.get("x-api-key"))
    if principal is None:
        raise HTTPException(401, "a valid API key is required in the X-Api-Key header")
    if principal.kind not in kinds:
        raise HTTPException(403, f"a {principal.kind} key may not call this; it needs one of: {', '.join(kinds)}")
    return principal


def require(*kinds: str) -> Callable[[Request], Awaitable[Principal]]:
    """FastAPI dependency: the caller, authenticated before the body is validated."""

    async def dependency(request: Request, _: ApiKey = None) -> Principal:
        return authenticate(request, *kinds)

    return dependency
