"""What the request handlers share for the life of the process, and how they get it.

main's lifespan builds one Runtime at startup; routes receive it (and the signed-in
user) through the FastAPI dependencies below. Both dependencies are coroutines: a
plain ``def`` would cost each request a hop to the threadpool and back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import select

from app import hashing, queries, security, throttle, token_cache
from app.database import Database
from app.models import User
from app.settings import Settings


@dataclasses.dataclass(frozen=True, slots=True)
class SignedIn:
    """The user a request's access token belongs to, as checked for this request."""

    id: int
    email: str


@dataclasses.dataclass(frozen=True)
class Runtime:
    settings: Settings
    database: Database
    heads: frozenset[str]
    #: where every password hash runs (bounded in number, see app.hashing)
    hashing: hashing.HashGate
    #: per-client and per-account limits of sign-in and sign-up
    limits: throttle.AuthLimits
    tokens: token_cache.TokenCache = dataclasses.field(default_factory=token_cache.TokenCache)

    @classmethod
    def start(cls, settings: Settings, database: Database, heads: frozenset[str]) -> Runtime:
        """The runtime for ``settings``: its hash gate sized from the memory limit."""
        limit, source = hashing.memory_limit(settings.memory_limit_bytes)
        budget = hashing.Budget.for_limit(
            limit,
            source,
            memory_cost_kib=security.MEMORY_COST_KIB,
            share=settings.hash_memory_share,
            queue=settings.hash_queue_length,
            max_wait=settings.hash_queue_timeout_seconds,
            slots=settings.hash_concurrency,
        )
        limits = throttle.AuthLimits(
            per_client=settings.auth_attempts_per_client,
            per_account=settings.auth_attempts_per_account,
            window=settings.auth_attempts_window_seconds,
            trusted=throttle.TrustedProxies.parse(settings.trusted_proxies),
        )
        return cls(
            settings=settings,
            database=database,
            heads=heads,
            hashing=hashing.HashGate(budget),
            limits=limits,
        )

    @property
    def secret(self) -> str:
        return self.settings.jwt_secret_key.get_secret_value()

    def issue(self, user: User, kind: security.TokenKind) -> str:
        assert user.id is not None  # only stored users get tokens
        minutes = (
            self.settings.jwt_expire_minutes
            if kind is security.TokenKind.ACCESS
            else self.settings.password_reset_expire_minutes
        )
        return security.issue_token(
            user_id=user.id,
            password_hash=user.password_hash,
            kind=kind,
            secret=self.secret,
            lifetime=dt.timedelta(minutes=minutes),
        )

    def user_for_token(self, token: str, kind: security.TokenKind) -> User | None:
        """The user a valid, current token of ``kind`` belongs to, else None."""
        try:
            user_id, fingerprint, _ = security.read_token(token, kind=kind, secret=self.secret)
        except security.InvalidToken:
            return None
        with self.database.reading() as session:
            user = session.exec(select(User).where(User.id == user_id)).first()
        # A password change since the token was issued revokes it.
        if user is None or security.password_fingerprint(user.password_hash) != fingerprint:
            return None
        return user

    async def signed_in(self, token: str) -> SignedIn | None:
        """The user of a valid, current access token, else None.

        The signature is checked once per token (then remembered until its ``exp``);
        the user's row is read on every request, so that a removed account or a changed
        password revokes the token at once.
        """
        claims = self.tokens.get(token)
        if claims is token_cache.Expired.EXPIRED:
            return None
        if claims is None:
            try:
                verified = security.read_token(
                    token, kind=security.TokenKind.ACCESS, secret=self.secret
                )
            except security.InvalidToken:
                return None
            claims = token_cache.Claims(*verified)
            self.tokens.put(token, claims)
        user_id = claims.user_id
        row = await self.database.read(lambda connection: queries.user_row(connection, user_id))
        if row is None or security.password_fingerprint(row[1]) != claims.fingerprint:
            return None
        return SignedIn(id=user_id, email=row[0])


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="The access_token from /api/auth/login")


async def get_current_user(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> SignedIn:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = await runtime.signed_in(credentials.credentials)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Invalid or expired token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[SignedIn, Depends(get_current_user)]
