"""``nox -s cluster -- down`` then ``up``: the stack returns, and its data with it."""

from __future__ import annotations

import sys

import httpx
from conftest import FRONTEND, json_of, run, wait_for


def test_cluster_down_and_up_keeps_the_data(user: httpx.Client) -> None:
    todo = json_of(user.post("/api/todos", json={"title": "survives a cluster restart"}))
    run(sys.executable, "-m", "reconciler", "cluster", "down")
    run(sys.executable, "-m", "reconciler", "cluster", "up")
    wait_for(
        lambda: httpx.get(f"{FRONTEND}/api/health", timeout=5).status_code == 200,
        300,
        "the frontend",
    )
    wait_for(
        lambda: user.get(f"/api/todos/{todo['id']}").status_code == 200,
        300,
        "the backend and its data",
    )
    assert json_of(user.get(f"/api/todos/{todo['id']}"))["title"] == "survives a cluster restart"
