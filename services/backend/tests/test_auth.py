"""Accounts as a user meets them: sign up, sign in, who am I, and the errors on the way."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import select

from app.models import User
from tests import support


def test_register_login_and_me(client: TestClient) -> None:
    created = client.post(
        "/api/auth/register", json={"email": "Ann@Example.org", "password": support.PASSWORD}
    )
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "email": "ann@example.org"}

    # The address is one account whatever its case.
    login = client.post(
        "/api/auth/login", json={"email": "ANN@example.org", "password": support.PASSWORD}
    )
    assert login.status_code == 200
    assert login.json()["token_type"] == "bearer"

    me = client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json() == created.json()


def test_registering_an_existing_email_is_a_conflict(client: TestClient) -> None:
    support.sign_up(client, "ann@example.org")
    again = client.post(
        "/api/auth/register", json={"email": "ANN@example.org", "password": "another password"}
    )
    assert again.status_code == 409
    # The original password still works: the second attempt changed nothing.
    login = client.post(
        "/api/auth/login", json={"email": "ann@example.org", "password": support.PASSWORD}
    )
    assert login.status_code == 200


def test_wrong_password_and_unknown_email_look_the_same(client: TestClient) -> None:
    support.sign_up(client, "ann@example.org")
    wrong = client.post(
        "/api/auth/login", json={"email": "ann@example.org", "password": "not the password"}
    )
    unknown = client.post("/api/auth/login", json={"email": "nobody@example.org", "password": "x"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == {"detail": "Invalid email or password"}


def test_password_is_not_stored_in_clear(client: TestClient) -> None:
    support.sign_up(client, "ann@example.org")
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    with runtime.database.reading() as session:
        user = session.exec(select(User)).one()
    assert support.PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")


def test_registration_input_limits_name_the_field(client: TestClient) -> None:
    cases = [
        ({"email": "not-an-email", "password": support.PASSWORD}, "email"),
        ({"email": "ann@example.org", "password": "short"}, "password"),
        ({"email": "ann@example.org", "password": "x" * 129}, "password"),
        ({"email": "ann@example.org"}, "password"),
        ({"email": "ann@example.org", "password": support.PASSWORD, "admin": True}, "admin"),
    ]
    for body, field in cases:
        response = client.post("/api/auth/register", json=body)
        assert response.status_code == 422, body
        assert ["body", field] in [error["loc"] for error in response.json()["detail"]], body


def test_me_without_a_token_is_unauthorized(client: TestClient) -> None:
    response = client.get("/api/auth/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
