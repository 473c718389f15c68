"""Password hashing (argon2id) and the two kinds of signed tokens (access, password reset).

Both token kinds carry a fingerprint of the user's current password hash, so that
changing the password revokes every token issued before, and a reset token works
only once.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from typing import NamedTuple

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_ALGORITHM = "HS256"
_ISSUER = "lumina-backend"

# OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane; argon2-cffi's default
# is 64 MiB). Each hash holds MEMORY_COST_KIB for its run: app.hashing bounds how
# many run at once, and the routes call these functions only through it.
MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
_hasher = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_COST_KIB, parallelism=PARALLELISM)
# Verified against when the email is unknown, so both failures take the same time.
_DUMMY_HASH = _hasher.hash("lumina-timing-equaliser")


class TokenKind(enum.StrEnum):
    ACCESS = "access"
    PASSWORD_RESET = "password-reset"  # noqa: S105  # a claim value, not a secret


class InvalidToken(Exception):
    """The token is malformed, forged, expired, or no longer matches the user."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with ``password_hash=None`` spend the same time and fail."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and (
            password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def password_fingerprint(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def issue_token(
    *,
    user_id: int,
    password_hash: str,
    kind: TokenKind,
    secret: str,
    lifetime: dt.timedelta,
) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {
        "sub": str(user_id),
        "kind": kind.value,
        "pwd": password_fingerprint(password_hash),
        "iss": _ISSUER,
        "iat": now,
        "exp": now + lifetime,
    }
    return jwt.encode(claims, secret, algorithm=_ALGORITHM)


class Verified(NamedTuple):
    """What a valid token says: whose it is, for which password, until when."""

    user_id: int
    fingerprint: str
    expires_at: float  # seconds since the epoch


def read_token(token: str, *, kind: TokenKind, secret: str) -> Verified:
    """The claims of a valid token of ``kind``."""
    try:
        claims = jwt.decode(
            token,
            secret,
            # Pinning the algorithm rejects "none" and key-confusion tokens.
            algorithms=[_ALGORITHM],
            issuer=_ISSUER,
            options={"require": ["sub", "exp", "iat", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims.get("kind") != kind.value:
        raise InvalidToken("wrong token kind")
    subject, fingerprint, expires = claims.get("sub"), claims.get("pwd"), claims["exp"]
    if (
        not isinstance(subject, str)
        or not (subject.isascii() and subject.isdigit())
        or not isinstance(fingerprint, str)
        or not isinstance(expires, int | float)
    ):
        raise InvalidToken("malformed claims")
    return Verified(int(subject), fingerprint, float(expires))
