"""Bearer tokens for the deletion service: stored as SHA-256 hashes, compared in constant time, never logged.

Tokens are random (:func:`new_token`, 256 bits), so an unsalted SHA-256 of them is safe to keep in the
service config: unlike customer numbers they cannot be enumerated. Scopes: ``submit`` (file and cancel
requests), ``read`` (status, receipts, discovery), ``admin`` (everything, and the request list).

>>> token, digest = new_token()
>>> auth = TokenAuth([TokenEntry("desk", digest, frozenset({"submit"}))])
>>> auth.authenticate(f"Bearer {token}").name, auth.authenticate("Bearer nope")
('desk', None)
>>> auth.authenticate(f"Bearer {token}").allows("read")
False
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError

SCOPES = ("submit", "read", "admin")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random token and the hash to put in the service config."""
    token = "obl_" + secrets.token_urlsafe(32)
    return token, token_digest(token)


@dataclass(frozen=True)
class TokenEntry:
    name: str
    sha256: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


class TokenAuth:
    """The configured tokens; :meth:`authenticate` maps an ``Authorization`` header to its entry or None."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self.entries = list(entries)
        for e in self.entries:
            bad = sorted(set(e.scopes) - set(SCOPES))
            if bad:
                raise ConfigError(f"token {e.name!r} has unknown scope(s) {bad}; choose from {', '.join(SCOPES)}")
            if len(e.sha256) != 64 or any(c not in "0123456789abcdef" for c in e.sha256):
                raise ConfigError(f"token {e.name!r}: sha256 must be 64 lowercase hex digits (the token's SHA-256; "
                                  f"make one with `obliviate serve-token`)")
        if not self.entries:
            raise ConfigError("the service config names no token; add one made by `obliviate serve-token`")

    def authenticate(self, header: str | None) -> TokenEntry | None:
        if not header or not header.startswith("Bearer "):
            return None
        digest = token_digest(header[len("Bearer "):].strip())
        found = None
        for e in self.entries:  # compare against every entry: the time taken does not depend on which matched
            if hmac.compare_digest(digest, e.sha256):
                found = e
        return found
