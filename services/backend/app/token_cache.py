"""A memo of verified access tokens, so a request need not check a JWT's signature again.

Who calls it: ``Runtime.signed_in`` (the authentication of every request). It
remembers only what the signature check proved — whose token it is, the password
fingerprint it was issued for, when it expires — never whether the user is still
valid: that is read from the database on every request, so a removed account or a
changed password takes effect on the next request, whichever process made the change.
An entry is never used at or after its token's ``exp``.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable

#: about 200 bytes an entry: a bound on memory whatever tokens the clients send
MAX_ENTRIES = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class Claims:
    user_id: int
    fingerprint: str
    expires_at: float  # the token's exp, seconds since the epoch


class Expired(enum.Enum):
    """The token is known and past its ``exp``: rejected without checking it again."""

    EXPIRED = "expired"


class TokenCache:
    """Verified tokens to their claims, the oldest dropped first past ``max_entries``."""

    def __init__(
        self, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, Claims] = {}

    def get(self, token: str) -> Claims | Expired | None:
        """The claims of a token verified before and still current; None when unknown."""
        claims = self._entries.get(token)
        if claims is None:
            return None
        if self.clock() >= claims.expires_at:
            # Kept: an expired token stays expired, and a miss would verify it again.
            return Expired.EXPIRED
        return claims

    def put(self, token: str, claims: Claims) -> None:
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[token] = claims

    def __len__(self) -> int:
        return len(self._entries)
