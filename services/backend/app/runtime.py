"""What the request handlers share for the life of the process, and how they get it.

main's lifespan builds one Runtime at startup; routes receive it (and the signed-in
user) through the FastAPI dependencies below.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import select

from app import security
from app.database import Database
from app.models import User
from app.settings import Settings


@dataclasses.dataclass(frozen=True)
class Runtime:
    settings: Settings
    database: Database
    heads: frozenset[str]

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
            user_id, fingerprint = security.read_token(token, kind=kind, secret=self.secret)
        except security.InvalidToken:
            return None
        with self.database.reading() as session:
            user = session.exec(select(User).where(User.id == user_id)).first()
        # A password change since the token was issued revokes it.
        if user is None or security.password_fingerprint(user.password_hash) != fingerprint:
            return None
        return user


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]

_bearer = HTTPBearer(auto_error=False, description="The access_token from /api/auth/login")


def get_current_user(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Not authenticated",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = runtime.user_for_token(credentials.credentials, security.TokenKind.ACCESS)
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Invalid or expired token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
