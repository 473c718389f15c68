"""A token verified once is remembered, but never past its ``exp``, and never for a user
whose account is gone or whose password changed since — whoever changed it."""

from __future__ import annotations

import sqlite3

import jwt
from fastapi.testclient import TestClient

from app import token_cache
from app.settings import Settings
from tests import support


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _expiry(headers: dict[str, str]) -> float:
    claims = jwt.decode(_token(headers), options={"verify_signature": False})
    return float(claims["exp"])


def _database(settings: Settings) -> sqlite3.Connection:
    """The database file as another process (an operator, a restore) opens it."""
    path = settings.database_url.removeprefix("sqlite:///")
    return sqlite3.connect(path, isolation_level=None)


def test_a_remembered_token_is_refused_once_it_expires(
    client: TestClient, alice: dict[str, str]
) -> None:
    assert client.get("/api/todos", headers=alice).status_code == 200  # now remembered
    cache = client.app.state.runtime.tokens  # type: ignore[attr-defined]
    cache.clock = lambda: _expiry(alice)
    assert client.get("/api/todos", headers=alice).status_code == 401
    assert client.get("/api/auth/me", headers=alice).status_code == 401


def test_a_password_changed_elsewhere_revokes_a_remembered_token(
    client: TestClient, settings: Settings, alice: dict[str, str]
) -> None:
    assert client.get("/api/auth/me", headers=alice).status_code == 200
    with _database(settings) as db:
        db.execute("UPDATE users SET password_hash = 'changed' WHERE email = 'alice@example.org'")
    assert client.get("/api/auth/me", headers=alice).status_code == 401
    assert client.post("/api/todos", json={"title": "x"}, headers=alice).status_code == 401


def test_a_removed_account_revokes_a_remembered_token(
    client: TestClient, settings: Settings, alice: dict[str, str]
) -> None:
    assert client.post("/api/todos", json={"title": "mine"}, headers=alice).status_code == 201
    with _database(settings) as db:
        db.execute("DELETE FROM users WHERE email = 'alice@example.org'")
    assert client.get("/api/todos", headers=alice).status_code == 401
    assert client.post("/api/todos", json={"title": "x"}, headers=alice).status_code == 401


def test_a_new_account_with_a_reused_id_is_not_reachable_with_the_old_token(
    client: TestClient, settings: Settings, alice: dict[str, str]
) -> None:
    alice_id = client.get("/api/auth/me", headers=alice).json()["id"]
    with _database(settings) as db:
        # As a restore of a backup older than Alice's account would leave it.
        db.execute("DELETE FROM users WHERE id = ?", (alice_id,))
    bob = support.sign_up(client, "bob@example.org")
    assert client.get("/api/auth/me", headers=bob).json()["id"] == alice_id  # the id is reused
    client.post("/api/todos", json={"title": "bob's"}, headers=bob)

    assert client.get("/api/todos", headers=alice).status_code == 401
    assert client.get("/api/auth/me", headers=alice).status_code == 401


def test_the_memo_forgets_expired_and_oldest_entries() -> None:
    now = [1000.0]
    cache = token_cache.TokenCache(max_entries=2, clock=lambda: now[0])
    cache.put("a", token_cache.Claims(1, "f", expires_at=1010.0))
    assert cache.get("a") == token_cache.Claims(1, "f", expires_at=1010.0)
    assert cache.get("unknown") is None
    now[0] = 1010.0
    assert cache.get("a") is token_cache.Expired.EXPIRED
    assert cache.get("a") is token_cache.Expired.EXPIRED
    for name in ("b", "c"):
        cache.put(name, token_cache.Claims(1, "f", expires_at=2000.0))
    assert len(cache) == 2
    assert cache.get("a") is None  # the oldest made room
    assert cache.get("c") is not None
