"""The HTTP surface other services are built against (the team's shared contract):
these routes, under /api, with the OpenAPI document and docs where clients look."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests import support

CONTRACT = {
    ("get", "/api/health"),
    ("get", "/api/ready"),
    ("post", "/api/auth/register"),
    ("post", "/api/auth/login"),
    ("get", "/api/auth/me"),
    ("post", "/api/auth/password-reset"),
    ("post", "/api/auth/password-reset/confirm"),
    ("get", "/api/todos"),
    ("post", "/api/todos"),
    ("get", "/api/todos/{todo_id}"),
    ("patch", "/api/todos/{todo_id}"),
    ("delete", "/api/todos/{todo_id}"),
}


def test_openapi_lists_exactly_the_contract_routes(client: TestClient) -> None:
    document = client.get("/api/openapi.json")
    assert document.status_code == 200
    routes = {(method, path) for path, item in document.json()["paths"].items() for method in item}
    assert routes == CONTRACT


def test_docs_are_served_under_api(client: TestClient) -> None:
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "/api/openapi.json" in docs.text
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404


def test_todo_shape(client: TestClient, alice: dict[str, str]) -> None:
    todo = client.post("/api/todos", json={"title": "shape"}, headers=alice).json()
    assert set(todo) == {
        "id",
        "title",
        "description",
        "due_date",
        "priority",
        "done",
        "created_at",
        "updated_at",
    }
    page = client.get("/api/todos", headers=alice).json()
    assert set(page) == {"items", "total", "limit", "offset"}
    token = client.post(
        "/api/auth/login", json={"email": "alice@example.org", "password": support.PASSWORD}
    ).json()
    assert set(token) == {"access_token", "token_type"}
    assert token["token_type"] == "bearer"
