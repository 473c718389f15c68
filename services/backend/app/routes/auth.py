"""Accounts: register, log in, who am I, and the optional password-reset mail flow."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, HTTPException, Response, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from app import mailing, security
from app.models import User
from app.runtime import CurrentUser, Runtime, RuntimeDep
from app.schemas import (
    Credentials,
    Detail,
    LoginRequest,
    PasswordResetConfirm,
    PasswordResetRequest,
    Responses,
    TokenOut,
    UserOut,
)

router = APIRouter(prefix="/auth", tags=["auth"])

_UNAUTHORIZED: Responses = {
    401: {"model": Detail, "description": "Missing, invalid or expired token"}
}
_MAIL_OFF: Responses = {503: {"model": Detail, "description": "Mail is not configured"}}


def _normalise(email: str) -> str:
    return email.strip().lower()


def _require_mail(runtime: Runtime) -> None:
    if not runtime.settings.mail_enabled:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "mail is not configured")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"model": Detail, "description": "The email is already registered"}},
)
def register(body: Credentials, runtime: RuntimeDep) -> User:
    email = _normalise(body.email)
    # Hash outside the write lock: it is the slow part and needs no database.
    password_hash = security.hash_password(body.password)
    conflict = HTTPException(status.HTTP_409_CONFLICT, "Email already registered")
    try:
        with runtime.database.writing() as session:
            if session.exec(select(User.id).where(User.email == email)).first() is not None:
                raise conflict
            user = User(email=email, password_hash=password_hash)
            session.add(user)
    except IntegrityError:
        # Another process (not this one: writes are serialised here) got there first.
        raise conflict from None
    return user


@router.post(
    "/login",
    response_model=TokenOut,
    responses={401: {"model": Detail, "description": "Invalid email or password"}},
)
def login(body: LoginRequest, runtime: RuntimeDep) -> TokenOut:
    with runtime.database.reading() as session:
        user = session.exec(select(User).where(User.email == _normalise(body.email))).first()
    # Unknown email and wrong password take the same path, time and answer.
    if not security.verify_password(body.password, user.password_hash if user else None):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid email or password")
    assert user is not None
    return TokenOut(access_token=runtime.issue(user, security.TokenKind.ACCESS))


@router.get("/me", response_model=UserOut, responses=_UNAUTHORIZED)
async def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, email=user.email)


@router.post(
    "/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Detail,
    responses=_MAIL_OFF,
)
def request_password_reset(
    body: PasswordResetRequest, runtime: RuntimeDep, background: BackgroundTasks
) -> Detail:
    """Mail a reset code if the account exists; the answer is the same either way."""
    _require_mail(runtime)
    email = _normalise(body.email)
    with runtime.database.reading() as session:
        user = session.exec(select(User).where(User.email == email)).first()
    if user is not None:
        token = runtime.issue(user, security.TokenKind.PASSWORD_RESET)
        background.add_task(mailing.send_password_reset, runtime.settings, to=email, token=token)
    return Detail(detail="If the account exists, a reset code is on its way")


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        400: {"model": Detail, "description": "Invalid, used or expired reset code"},
        **_MAIL_OFF,
    },
)
def confirm_password_reset(body: PasswordResetConfirm, runtime: RuntimeDep) -> Response:
    _require_mail(runtime)
    invalid = HTTPException(status.HTTP_400_BAD_REQUEST, "Invalid or expired reset token")
    user = runtime.user_for_token(body.token, security.TokenKind.PASSWORD_RESET)
    if user is None:
        raise invalid
    new_hash = security.hash_password(body.new_password)
    with runtime.database.writing() as session:
        stored = session.get(User, user.id)
        # Re-checked under the write lock so two uses of one code cannot both succeed.
        if stored is None or stored.password_hash != user.password_hash:
            raise invalid
        stored.password_hash = new_hash
    return Response(status_code=status.HTTP_204_NO_CONTENT)
