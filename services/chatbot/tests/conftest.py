"""Shared fixtures: a real backend process, real users, and the chatbot app in-process.

The backend is the real `services/backend` app started with uvicorn from `$BACKEND_SRC`
(default: the sibling directory) on a free port with a temporary SQLite file, using this
interpreter (`sys.executable`), so the backend's requirements must be installed in the
same environment (the nox `chatbot` session installs them).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from agents import Model
from fastapi.testclient import TestClient

from app import main, settings

HERE = Path(__file__).resolve().parent
DEFAULT_BACKEND_SRC = HERE.parent.parent / "backend"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BackendProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def start_backend(tmp_dir: Path) -> BackendProcess:
    """Start the real backend and wait until `/api/health` answers."""
    src = Path(os.environ.get("BACKEND_SRC") or DEFAULT_BACKEND_SRC).resolve()
    if not (src / "app" / "main.py").is_file():
        pytest.fail(
            f"The real backend is needed but {src}/app/main.py does not exist; "
            "set BACKEND_SRC to the services/backend directory."
        )
    port = free_port()
    log_path = tmp_dir / f"backend-{port}.log"
    env = {
        **os.environ,
        "JWT_SECRET_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": f"sqlite:///{tmp_dir / f'lumina-{port}.db'}",
        # Every test user signs up from this one address: no per-client limit in the way.
        "AUTH_ATTEMPTS_PER_CLIENT": "1000000",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, our own interpreter
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port", str(port)],
            cwd=src,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    backend = BackendProcess(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The backend exited with {process.returncode}:\n{backend.log_tail()}")
        try:
            if httpx2.get(f"{backend.url}/api/health", timeout=1).status_code == 200:
                return backend
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    backend.stop()
    pytest.fail(f"The backend did not answer /api/health within 60 s:\n{backend.log_tail()}")


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackendProcess]:
    process = start_backend(tmp_path_factory.mktemp("backend"))
    yield process
    process.stop()


@dataclass
class User:
    email: str
    token: str
    backend_url: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def todos(self) -> list[dict[str, object]]:
        """The user's todos as the backend reports them (not through the chatbot)."""
        response = httpx2.get(f"{self.backend_url}/api/todos", headers=self.headers, timeout=5)
        response.raise_for_status()
        return list(response.json()["items"])

    def add_todo(self, title: str) -> dict[str, object]:
        response = httpx2.post(
            f"{self.backend_url}/api/todos", json={"title": title}, headers=self.headers, timeout=5
        )
        assert response.status_code == 201, response.text
        return dict(response.json())

    def todo_status(self, todo_id: object) -> int:
        return httpx2.get(
            f"{self.backend_url}/api/todos/{todo_id}", headers=self.headers, timeout=5
        ).status_code


def register(backend_url: str) -> User:
    email = f"user-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(16)
    created = httpx2.post(
        f"{backend_url}/api/auth/register", json={"email": email, "password": password}, timeout=5
    )
    assert created.status_code == 201, created.text
    login = httpx2.post(
        f"{backend_url}/api/auth/login", json={"email": email, "password": password}, timeout=5
    )
    assert login.status_code == 200, login.text
    return User(email=email, token=login.json()["access_token"], backend_url=backend_url)


@pytest.fixture
def make_user(backend: BackendProcess) -> Callable[[], User]:
    return lambda: register(backend.url)


ChatbotFactory = Callable[..., TestClient]


@pytest.fixture
def chatbot() -> Iterator[ChatbotFactory]:
    """Start chatbot apps (lifespan included) with given settings and model."""
    clients: list[TestClient] = []

    def start(*, model: Model | None = None, **overrides: object) -> TestClient:
        config = settings.Settings(**overrides)  # type: ignore[arg-type]
        client = TestClient(main.create_app(config, model=model), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


class ServerThread:
    """A real uvicorn server for one app, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the chatbot did not start under uvicorn")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
