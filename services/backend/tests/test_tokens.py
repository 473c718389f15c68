"""Only tokens this backend signed, for this user's current password and still in
their lifetime, open the API."""

from __future__ import annotations

import base64
import datetime as dt
import json

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from app import security
from app.models import User
from tests import support

KEY = support.SECRET


def _past() -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)


def _claims_of(headers: dict[str, str]) -> dict[str, object]:
    token = headers["Authorization"].removeprefix("Bearer ")
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def _status_with(client: TestClient, token: str) -> int:
    return client.get("/api/todos", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_valid_token_works(client: TestClient, alice: dict[str, str]) -> None:
    assert client.get("/api/todos", headers=alice).status_code == 200
    claims = _claims_of(alice)
    lifetime = int(str(claims["exp"])) - int(str(claims["iat"]))
    assert lifetime == 60 * 60  # JWT_EXPIRE_MINUTES defaults to 60


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda c: jwt.encode(c, "another-secret-of-sufficient-length!"), id="key"),
        pytest.param(
            lambda c: jwt.encode(
                c | {"exp": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)}, KEY
            ),
            id="expired",
        ),
        pytest.param(lambda c: jwt.encode(c, None, algorithm="none"), id="alg none"),
        pytest.param(lambda c: jwt.encode(c, KEY * 2, algorithm="HS512"), id="other alg"),
        pytest.param(lambda c: jwt.encode(c | {"kind": "password-reset"}, KEY), id="reset kind"),
        pytest.param(lambda c: jwt.encode(c | {"pwd": "0" * 16}, KEY), id="old password"),
        pytest.param(
            lambda c: jwt.encode({k: v for k, v in c.items() if k != "exp"}, KEY), id="no expiry"
        ),
        pytest.param(lambda c: "not.a.jwt", id="garbage"),
    ],
)
def test_forged_or_stale_tokens_are_rejected(
    client: TestClient, alice: dict[str, str], forge: object
) -> None:
    claims = _claims_of(alice)
    token = forge(claims)  # type: ignore[operator]
    response = client.get("/api/todos", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid or expired token"}


def test_tampered_payload_breaks_the_signature(
    client: TestClient, alice: dict[str, str], bob: dict[str, str]
) -> None:
    # Alice swaps in Bob's user id but keeps her own signature.
    header, payload, signature = alice["Authorization"].removeprefix("Bearer ").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = _claims_of(bob)["sub"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert _status_with(client, f"{header}.{forged_payload}.{signature}") == 401


def test_a_token_expires_with_time(client: TestClient, alice: dict[str, str]) -> None:
    # Issued by the app's own code with a lifetime that has already run out.
    claims = _claims_of(alice)
    token = security.issue_token(
        user_id=int(str(claims["sub"])),
        password_hash=_password_hash(client),
        kind=security.TokenKind.ACCESS,
        secret=KEY,
        lifetime=dt.timedelta(seconds=-1),
    )
    assert _status_with(client, token) == 401


def test_a_token_of_a_user_signed_with_the_right_key_but_unknown_id(client: TestClient) -> None:
    support.sign_up(client, "ann@example.org")
    token = security.issue_token(
        user_id=999_999,
        password_hash=_password_hash(client),
        kind=security.TokenKind.ACCESS,
        secret=KEY,
        lifetime=dt.timedelta(minutes=5),
    )
    assert _status_with(client, token) == 401


def _password_hash(client: TestClient) -> str:
    with client.app.state.runtime.database.reading() as session:  # type: ignore[attr-defined]
        return session.exec(select(User)).first().password_hash  # type: ignore[no-any-return]
