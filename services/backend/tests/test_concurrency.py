"""Fifty clients writing at once to the real server: every write lands, none fails.

SQLite allows one writer at a time; the backend must queue writers instead of
letting any of them see "database is locked" (see app/database.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest

from tests import support

WRITERS = 50
TODOS_EACH = 6


@pytest.fixture
def server_env(server_env: dict[str, str]) -> dict[str, str]:
    # Fifty clients behind the frontend (this test is the frontend: it says whose request
    # it forwards), and no per-account limit in the way of fifty registrations of one email.
    return {**server_env, "TRUSTED_PROXIES": "127.0.0.1", "AUTH_ATTEMPTS_PER_ACCOUNT": "1000"}


def _client(n: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"10.0.0.{n + 1}"}


def _all_at_once(work: Callable[[int], list[int]]) -> list[int]:
    """Run ``work(n)`` for every writer on its own thread, released together."""
    start = threading.Barrier(WRITERS)

    def released(n: int) -> list[int]:
        start.wait()
        return work(n)

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        return [status for statuses in pool.map(released, range(WRITERS)) for status in statuses]


def test_fifty_concurrent_writers_lose_nothing(server: support.Server) -> None:
    # Every writer signs up at the same moment: fifty concurrent INSERTs into users.
    tokens: dict[int, dict[str, str]] = {}

    def sign_up(n: int) -> list[int]:
        with server.client(headers=_client(n)) as http:
            email = f"writer{n}@example.org"
            registered = http.post(
                "/api/auth/register", json={"email": email, "password": support.PASSWORD}
            )
            login = http.post(
                "/api/auth/login", json={"email": email, "password": support.PASSWORD}
            )
            tokens[n] = {"Authorization": f"Bearer {login.json().get('access_token')}"}
            return [registered.status_code, login.status_code]

    assert set(_all_at_once(sign_up)) == {200, 201}

    shared = tokens[0]

    # Then each creates todos of its own and on one shared account, and completes them.
    def write(n: int) -> list[int]:
        statuses = []
        with server.client() as http:
            for i in range(TODOS_EACH):
                own = http.post("/api/todos", json={"title": f"w{n} t{i}"}, headers=tokens[n])
                common = http.post(
                    "/api/todos", json={"title": f"shared w{n} t{i}"}, headers=shared
                )
                done = http.patch(
                    f"/api/todos/{own.json().get('id')}", json={"done": True}, headers=tokens[n]
                )
                statuses += [own.status_code, common.status_code, done.status_code]
        return statuses

    statuses = _all_at_once(write)
    assert len(statuses) == WRITERS * TODOS_EACH * 3
    assert set(statuses) == {200, 201}, sorted(set(statuses))

    with server.client() as http:
        for n in range(1, WRITERS):
            mine = http.get("/api/todos?limit=100", headers=tokens[n]).json()
            assert mine["total"] == TODOS_EACH
            assert all(item["done"] for item in mine["items"])
        team = http.get("/api/todos?q=shared&limit=100", headers=shared).json()
        assert team["total"] == WRITERS * TODOS_EACH
        titles = set()
        for offset in range(0, team["total"], 100):
            page = http.get(f"/api/todos?q=shared&limit=100&offset={offset}", headers=shared)
            titles |= {item["title"] for item in page.json()["items"]}
    assert titles == {f"shared w{n} t{i}" for n in range(WRITERS) for i in range(TODOS_EACH)}
    log = server.log()
    assert "database is locked" not in log
    assert "Traceback" not in log


def test_concurrent_registration_of_one_email_creates_one_account(server: support.Server) -> None:
    def register(n: int) -> list[int]:
        with httpx.Client(base_url=server.base_url, timeout=60, headers=_client(n)) as http:
            body = {"email": "same@example.org", "password": support.PASSWORD}
            return [http.post("/api/auth/register", json=body).status_code]

    statuses = _all_at_once(register)
    assert sorted(statuses) == [201] + [409] * (WRITERS - 1)
