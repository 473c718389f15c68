"""Fixtures: the real app on a real SQLite file, in-process (TestClient) or as a real
uvicorn process, and two signed-up users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests import support


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return support.make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan run (migrations applied) on a fresh database file."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def alice(client: TestClient) -> dict[str, str]:
    return support.sign_up(client, "alice@example.org")


@pytest.fixture
def bob(client: TestClient) -> dict[str, str]:
    return support.sign_up(client, "bob@example.org")


@pytest.fixture
def server_env(tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'lumina.db'}",
        "JWT_SECRET_KEY": support.SECRET,
    }


@pytest.fixture
def server(server_env: dict[str, str], tmp_path: Path) -> Iterator[support.Server]:
    running = support.start_server(server_env, tmp_path / "uvicorn.log")
    yield running
    running.stop()
