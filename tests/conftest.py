"""Shared fixtures: real git repositories laid out like this project."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable

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
