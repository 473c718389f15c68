"""Helpers shared by the tests: settings for a throwaway database, signing users up,
and running the real uvicorn process the container runs."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from app.settings import Settings

BACKEND_DIR = Path(__file__).resolve().parent.parent
SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
PASSWORD = "correct horse battery"
# Variables of the service contract: scrubbed from the inherited environment so that a
# developer's shell cannot change what a test runs against.
_SERVICE_VARS = ("DATABASE_URL", "JWT_SECRET_KEY", "JWT_EXPIRE_MINUTES", "SMTP_")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'lumina.db'}",
        "JWT_SECRET_KEY": SECRET,
    }
    values.update(overrides)
    return Settings(**values)


def sign_up(client: TestClient | httpx.Client, email: str) -> dict[str, str]:
    """Register ``email`` and log in; returns the Authorization header for it."""
    created = client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    assert created.status_code == 201, created.text
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclasses.dataclass
class Server:
    """A real ``uvicorn app.main:app`` process, as the container runs it."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, **{"timeout": 30, **kwargs})

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as Kubernetes sends it; returns the exit code.

        uvicorn finishes its shutdown and then re-raises the signal, so a clean stop
        ends "killed by SIGTERM" (-15) after the lifespan's shutdown has run.
        """
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"backend ignored SIGTERM for {timeout}s:\n{self.log()}")
        return self.process.returncode


def service_env(env: Mapping[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SERVICE_VARS)}
    return clean | dict(env)


def launch(env: Mapping[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    port = env.get("PORT", str(free_port()))
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                port,
                "--http",
                "httptools",  # as the image runs it
                "--no-proxy-headers",
            ],
            cwd=BACKEND_DIR,
            env=service_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def start_server(env: Mapping[str, str], log_path: Path, *, port: int | None = None) -> Server:
    """Start uvicorn and wait until /api/ready answers 200."""
    port = port or free_port()
    process = launch({**env, "PORT": str(port)}, log_path)
    server = Server(process=process, base_url=f"http://127.0.0.1:{port}", log_path=log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"backend exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/api/ready", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    pytest.fail(f"backend not ready within 60s:\n{server.log()}")
