"""Accounts: register, log in, who am I, and the optional password-reset mail flow."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response, status
from sqlmodel import select

from app import mailing, queries, security
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
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}
#: the answers of a route that spends a sign-in attempt and a password hash
_LIMITED: Responses = {
    429: {
        "model": Detail,
        "description": "Too many attempts from this address or for this account",
        "headers": _RETRY_AFTER,
    },
    503: {
        "model": Detail,
        "description": "Every password-hashing slot is busy and the wait queue is full",
        "headers": _RETRY_AFTER,
    },
}


def _normalise(email: str) -> str:
    return email.strip().lower()


def _require_mail(runtime: Runtime) -> None:
    if not runtime.settings.mail_enabled:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "mail is not configured")


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={
        409: {"model": Detail, "description": "The email is already registered"},
        **_LIMITED,
    },
)
async def register(body: Credentials, request: Request, runtime: RuntimeDep) -> UserOut:
    email = _normalise(body.email)
    attempt = await runtime.limits.attempt(request, email)
    conflict = HTTPException(status.HTTP_409_CONFLICT, "Email already registered")
    # Cheap refusal first: a known email costs no hash (it is told apart by the 409 anyway).
    if await runtime.database.read(lambda connection: queries.login_row(connection, email)):
        raise conflict
    try:
        password_hash = await runtime.hashing.run(security.hash_password, body.password)
    except Exception:
        attempt.give_back()
        raise
    user_id = await runtime.database.write(
        lambda connection: queries.insert_user(connection, email, password_hash)
    )
    if user_id is None:  # registered meanwhile, by a request that hashed faster
        raise conflict
    return UserOut(id=user_id, email=email)


@router.post(
    "/login",
    response_model=TokenOut,
    responses={401: {"model": Detail, "description": "Invalid email or password"}, **_LIMITED},
)
async def login(body: LoginRequest, request: Request, runtime: RuntimeDep) -> TokenOut:
    email = _normalise(body.email)
    attempt = await runtime.limits.attempt(request, email)
    row = await runtime.database.read(lambda connection: queries.login_row(connection, email))
    stored_hash = row[1] if row else None
    # Unknown email and wrong password take the same path, time and answer.
    try:
        matches = await runtime.hashing.run(security.verify_password, body.password, stored_hash)
    except Exception:
        attempt.give_back()
        raise
    if not matches:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid email or password")
    assert row is not None
    user = User(id=row[0], email=email, password_hash=row[1])
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
    new_hash = runtime.hashing.call(security.hash_password, body.new_password)
    with runtime.database.writing() as session:
        stored = session.get(User, user.id)
        # Re-checked under the write lock so two uses of one code cannot both succeed.
        if stored is None or stored.password_hash != user.password_hash:
            raise invalid
        stored.password_hash = new_hash
    return Response(status_code=status.HTTP_204_NO_CONTENT)
