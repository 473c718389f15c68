"""``nox -s cluster -- down`` then ``up``: the stack returns, and its data with it.

Exclusive: it stops the whole cluster, under every other environment too.
"""

from __future__ import annotations

import sys

import environments
import httpx
import pytest
from conftest import json_of, run, wait_for

FRONTEND = environments.for_module(__file__).url

pytestmark = pytest.mark.exclusive


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
