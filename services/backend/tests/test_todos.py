"""Todos as a signed-in user works with them: create, read, change, delete, find."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests import support


def _create(client: TestClient, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = client.post("/api/todos", json=body, headers=headers)
    assert response.status_code == 201, response.text
    todo: dict[str, object] = response.json()
    return todo


def test_create_read_update_delete(client: TestClient, alice: dict[str, str]) -> None:
    todo = _create(
        client,
        alice,
        title="  Buy milk  ",
        description="two litres",
        due_date="2030-01-31",
        priority="high",
    )
    assert todo["title"] == "Buy milk"  # surrounding blanks are not part of a title
    assert todo["description"] == "two litres"
    assert todo["due_date"] == "2030-01-31"
    assert todo["priority"] == "high"
    assert todo["done"] is False
    created = dt.datetime.fromisoformat(str(todo["created_at"]))
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=1)

    url = f"/api/todos/{todo['id']}"
    assert client.get(url, headers=alice).json() == todo

    patched = client.patch(url, json={"done": True, "description": None}, headers=alice)
    assert patched.status_code == 200
    assert patched.json()["done"] is True
    assert patched.json()["description"] is None
    assert patched.json()["title"] == "Buy milk"  # untouched fields stay
    assert patched.json()["updated_at"] > str(todo["updated_at"])
    assert client.get(url, headers=alice).json() == patched.json()

    assert client.delete(url, headers=alice).status_code == 204
    gone = client.get(url, headers=alice)
    assert gone.status_code == 404
    assert gone.json() == {"detail": "Todo not found"}
    assert client.delete(url, headers=alice).status_code == 404


def test_defaults(client: TestClient, alice: dict[str, str]) -> None:
    todo = _create(client, alice, title="Plain")
    assert todo["priority"] == "medium"
    assert todo["description"] is None
    assert todo["due_date"] is None
    assert todo["done"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": "ok", "description": "x" * 2001}, "description"),
        ({"title": "ok", "priority": "urgent"}, "priority"),
        ({"title": "ok", "due_date": "31/01/2030"}, "due_date"),
        ({"title": "ok", "due_date": "2030-02-30"}, "due_date"),
        ({"description": "no title"}, "title"),
        ({"title": "ok", "done": True}, "done"),  # a new todo is open; done is set by PATCH
    ],
)
def test_invalid_input_is_422_naming_the_field(
    client: TestClient, alice: dict[str, str], body: dict[str, object], field: str
) -> None:
    response = client.post("/api/todos", json=body, headers=alice)
    assert response.status_code == 422
    assert ["body", field] in [error["loc"] for error in response.json()["detail"]]


def test_text_that_is_not_valid_unicode_is_422(client: TestClient, alice: dict[str, str]) -> None:
    # JSON can spell a lone surrogate, which no UTF-8 database can store.
    response = client.post(
        "/api/todos",
        content=b'{"title": "\\ud800"}',
        headers={**alice, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "title"]


def test_limits_are_inclusive(client: TestClient, alice: dict[str, str]) -> None:
    todo = _create(client, alice, title="x" * 200, description="y" * 2000)
    assert len(str(todo["title"])) == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": None}, "title"),
        ({"done": None}, "done"),
        ({"priority": None}, "priority"),
        ({"priority": "asap"}, "priority"),
        ({"title": "y" * 201}, "title"),
        ({"done": "perhaps"}, "done"),
    ],
)
def test_invalid_patch_is_422_and_changes_nothing(
    client: TestClient, alice: dict[str, str], body: dict[str, object], field: str
) -> None:
    todo = _create(client, alice, title="Keep me")
    response = client.patch(f"/api/todos/{todo['id']}", json=body, headers=alice)
    assert response.status_code == 422
    assert ["body", field] in [error["loc"] for error in response.json()["detail"]]
    assert client.get(f"/api/todos/{todo['id']}", headers=alice).json() == todo


def test_list_is_newest_first_with_total(client: TestClient, alice: dict[str, str]) -> None:
    titles = [f"todo {n}" for n in range(5)]
    for title in titles:
        _create(client, alice, title=title)
    page = client.get("/api/todos", headers=alice).json()
    assert [item["title"] for item in page["items"]] == list(reversed(titles))
    assert (page["total"], page["limit"], page["offset"]) == (5, 50, 0)


def test_pagination(client: TestClient, alice: dict[str, str]) -> None:
    for n in range(7):
        _create(client, alice, title=f"todo {n}")
    seen = []
    for offset in (0, 3, 6):
        page = client.get(f"/api/todos?limit=3&offset={offset}", headers=alice).json()
        assert page["total"] == 7
        assert (page["limit"], page["offset"]) == (3, offset)
        seen += [item["title"] for item in page["items"]]
    assert seen == [f"todo {n}" for n in reversed(range(7))]
    past_the_end = client.get("/api/todos?offset=50", headers=alice).json()
    assert past_the_end["items"] == []
    assert past_the_end["total"] == 7


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("offset=-1", "offset"), ("done=maybe", "done")],
)
def test_bad_list_parameters_are_422(
    client: TestClient, alice: dict[str, str], query: str, field: str
) -> None:
    response = client.get(f"/api/todos?{query}", headers=alice)
    assert response.status_code == 422
    assert ["query", field] in [error["loc"] for error in response.json()["detail"]]


def test_filter_by_done_and_search_in_title(client: TestClient, alice: dict[str, str]) -> None:
    milk = _create(client, alice, title="Buy MILK")
    _create(client, alice, title="Call mum")
    bread = _create(client, alice, title="Buy bread", description="milk in description only")
    _create(client, alice, title="100% done")
    client.patch(f"/api/todos/{milk['id']}", json={"done": True}, headers=alice)

    def titles(query: str) -> list[str]:
        page = client.get(f"/api/todos?{query}", headers=alice).json()
        assert page["total"] == len(page["items"])
        return [item["title"] for item in page["items"]]

    assert titles("done=true") == ["Buy MILK"]
    assert titles("done=false") == ["100% done", "Buy bread", "Call mum"]
    assert titles("q=milk") == ["Buy MILK"]  # case-insensitive, titles only
    assert titles("q=buy&done=false") == [bread["title"]]
    assert titles("q=0%25") == ["100% done"]  # a % typed by the user is literal
    assert titles("q=%25") == ["100% done"]
    assert titles("q=_") == []


def test_users_cannot_see_or_touch_each_others_todos(client: TestClient) -> None:
    alice = support.sign_up(client, "alice@example.org")
    bob = support.sign_up(client, "bob@example.org")
    bobs = [_create(client, bob, title=f"bob's secret {n}") for n in range(3)]
    alices = _create(client, alice, title="alice's")

    # Alice walks every id around Bob's: each answer is the same 404 as a missing id.
    highest = max(int(str(t["id"])) for t in [*bobs, alices])
    for todo_id in range(1, highest + 3):
        if todo_id == alices["id"]:
            continue
        url = f"/api/todos/{todo_id}"
        for response in (
            client.get(url, headers=alice),
            client.patch(url, json={"title": "pwned", "done": True}, headers=alice),
            client.delete(url, headers=alice),
        ):
            assert response.status_code == 404, (response.request.method, url)
            assert response.json() == {"detail": "Todo not found"}

    listing = client.get("/api/todos?q=secret", headers=alice).json()
    assert listing == {"items": [], "total": 0, "limit": 50, "offset": 0}
    # Bob's todos came through untouched.
    for todo in bobs:
        assert client.get(f"/api/todos/{todo['id']}", headers=bob).json() == todo


def test_todos_need_a_token(client: TestClient, alice: dict[str, str]) -> None:
    todo = _create(client, alice, title="mine")
    assert client.get("/api/todos").status_code == 401
    assert client.post("/api/todos", json={"title": "x"}).status_code == 401
    assert client.get(f"/api/todos/{todo['id']}").status_code == 401
    assert client.patch(f"/api/todos/{todo['id']}", json={"done": True}).status_code == 401
    assert client.delete(f"/api/todos/{todo['id']}").status_code == 401
    assert client.get(f"/api/todos/{todo['id']}", headers=alice).json()["done"] is False


def test_request_body_over_one_mebibyte_is_413(client: TestClient, alice: dict[str, str]) -> None:
    big = b'{"title": "x", "description": "' + b"y" * (1024 * 1024) + b'"}'
    response = client.post(
        "/api/todos", content=big, headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must hold for a streamed body too.
        for _ in range(20):
            yield b"y" * 65536

    streamed = client.post(
        "/api/todos", content=chunks(), headers={**alice, "Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert client.get("/api/todos", headers=alice).json()["total"] == 0
