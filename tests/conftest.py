"""Shared fixtures: real git repositories laid out like this project, and real registries."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Lumina Test",
    "GIT_AUTHOR_EMAIL": "test@lumina.invalid",
    "GIT_COMMITTER_NAME": "Lumina Test",
    "GIT_COMMITTER_EMAIL": "test@lumina.invalid",
}

SERVICE_FILES = {
    "services/backend/Dockerfile": "FROM python:3.13-slim\nCOPY app /app\n",
    "services/backend/.dockerignore": "tests/\n**/__pycache__\n*.md\n",
    "services/backend/app/main.py": "app = 'backend'\n",
    "services/backend/app/models.py": "MODELS = []\n",
    "services/backend/requirements.txt": "fastapi==0.1\n",
    "services/backend/tests/test_app.py": "def test(): pass\n",
    "services/backend/README.md": "backend docs\n",
    "services/chatbot/Dockerfile": "FROM python:3.13-slim\nCOPY app /app\n",
    "services/chatbot/.dockerignore": "tests/\n",
    "services/chatbot/app/main.py": "app = 'chatbot'\n",
    "services/frontend/Dockerfile": "FROM node:20-slim\nCOPY . /app\n",
    "services/frontend/.dockerignore": "node_modules\n.next\ntests\n",
    "services/frontend/app/page.tsx": "export default function Page() {}\n",
    "services/frontend/package.json": "{}\n",
    "helm/lumina-todo/Chart.yaml": "apiVersion: v2\nname: lumina-todo\nversion: 0.1.0\n",
    "helm/lumina-todo/values.yaml": "backend: {}\n",
    "README.md": "# project\n",
    "tests/test_something.py": "def test(): pass\n",
}


def git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    ).stdout


def write(repo: pathlib.Path, relative: str, content: str) -> pathlib.Path:
    path = repo / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def commit_all(repo: pathlib.Path, message: str = "change") -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def project(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A git repository with the three services, a chart, docs and tests, committed."""
    for name in [name for name in os.environ if name.startswith("LUMINA_")]:
        monkeypatch.delenv(name)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for relative, content in SERVICE_FILES.items():
        write(repo, relative, content)
    commit_all(repo, "initial")
    return repo


PlanRunner = Callable[..., dict[str, object]]


@pytest.fixture
def plan_json() -> PlanRunner:
    """Run the real ``lumina-reconcile plan --json`` in a subprocess."""

    def run(repo: pathlib.Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", "--json", "--repo", str(repo), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        data: dict[str, object] = json.loads(result.stdout)
        return data

    return run


def rebuilds(plan: dict[str, object]) -> set[str]:
    services = plan["services"]
    assert isinstance(services, list)
    return {service["name"] for service in services if service["rebuild"]}


class RegistryServer:
    """A real registry (Debian's ``docker-registry``, the distribution project) on a free
    loopback port, storing into ``directory``. Loopback, so both the Docker engine and the
    cluster's containerd speak plain HTTP to it without further trust settings."""

    def __init__(self, directory: pathlib.Path, *, read_only: bool = False) -> None:
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            pytest.fail(
                "no registry binary: install Debian's docker-registry (tools/system-packages.sh)"
            )
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        # A read-only registry answers questions but refuses every push: a real refusal.
        maintenance = "  maintenance:\n    readonly:\n      enabled: true\n" if read_only else ""
        config = directory / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {directory / 'data'}\n{maintenance}"
            f"http:\n  addr: {self.address}\n"
        )
        self.log = directory / "registry.log"
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                [binary, "serve", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2):
                    return
            except (urllib.error.URLError, OSError):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"the registry did not start: {self.log.read_text()[-2000:]}")
                time.sleep(0.2)

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)

    def pushes(self) -> list[str]:
        """Manifests the registry stored, as ``repository:tag`` lines from its own log."""
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            # The access log: `"PUT /v2/NAME/manifests/TAG HTTP/1.1" 201 ...` when stored.
            if '"PUT /v2/' in line and "/manifests/" in line and '" 201 ' in line:
                path = line.split('"PUT /v2/', 1)[1].split(" ", 1)[0]
                name, _, tag = path.partition("/manifests/")
                found.append(f"{name}:{tag}")
        return found


@pytest.fixture(scope="session")
def registry_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., RegistryServer]]:
    """Start real registries on demand; every one still running is stopped at the end."""
    started: list[RegistryServer] = []

    def start(*, read_only: bool = False) -> RegistryServer:
        server = RegistryServer(tmp_path_factory.mktemp("registry"), read_only=read_only)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
