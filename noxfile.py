"""Task runner: lint, tests, the local cluster, bootstrap and benchmarks.

The README's two commands are ``nox -s bootstrap`` (bring the whole stack up) and
``nox -t ci`` (every check CI runs). Dependencies come from ``pyproject.toml`` and each
service's own requirements files, so there is one list of each.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil

import nox

ROOT = pathlib.Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
BACKEND = ROOT / "services" / "backend"
CHATBOT = ROOT / "services" / "chatbot"
FRONTEND = ROOT / "services" / "frontend"

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]


def _python(version: str) -> str:
    """An interpreter for ``version``: on PATH, else one of pyenv's installed builds."""
    if shutil.which(f"python{version}"):
        return version
    pyenv_root = os.environ.get("PYENV_ROOT", str(pathlib.Path.home() / ".pyenv"))
    found = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"))
    return found[-1] if found else version


PY = _python("3.13")


def _install_project(session: nox.Session, *groups: str) -> None:
    session.install("-e", ".")
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


@nox.session(python=PY, tags=["ci"])
def lint(session: nox.Session) -> None:
    """ruff on everything Python, mypy --strict on reconciler/ and plugins/."""
    _install_project(session, "lint")
    session.run("ruff", "check", "reconciler", "plugins", "tests", "noxfile.py")
    session.run("ruff", "format", "--check", "reconciler", "plugins", "noxfile.py")
    session.run("mypy", "--strict", "reconciler", "plugins")


@nox.session(python=PY, tags=["ci"])
def tests(session: nox.Session) -> None:
    """Reconciler tests: settings, plugins, planning, against real git and files."""
    _install_project(session, "test")
    session.run(
        "pytest",
        "tests",
        "--ignore=tests/chart",
        "--ignore=tests/cluster",
        "--ignore=tests/e2e",
        "--ignore=tests/tools",
        *session.posargs,
    )


@nox.session(python=PY, tags=["ci"])
def backend(session: nox.Session) -> None:
    """Backend service tests against a real SQLite file and a real server."""
    session.install(
        "-r", str(BACKEND / "requirements.txt"), "-r", str(BACKEND / "requirements-dev.txt")
    )
    session.chdir(BACKEND)
    session.run("pytest", *session.posargs)


@nox.session(python=PY, tags=["ci"])
def chatbot(session: nox.Session) -> None:
    """Chatbot tests: real MCP tools against a real backend; only the model is scripted."""
    session.install(
        "-r",
        str(CHATBOT / "requirements.txt"),
        "-r",
        str(CHATBOT / "requirements-dev.txt"),
        "-r",
        str(BACKEND / "requirements.txt"),
    )
    session.chdir(CHATBOT)
    session.run("pytest", *session.posargs, env={"BACKEND_SRC": str(BACKEND)})


@nox.session(python=PY, tags=["ci"])
def frontend(session: nox.Session) -> None:
    """Frontend unit tests (vitest) and a real-Chromium browser test against a real backend."""
    session.install("-r", str(BACKEND / "requirements.txt"))
    python = pathlib.Path(session.virtualenv.bin) / "python"
    env = {"BACKEND_PYTHON": str(python), "BACKEND_SRC": str(BACKEND)}
    session.chdir(FRONTEND)
    session.run("npm", "ci", "--no-audit", "--no-fund", external=True)
    session.run("npm", "test", external=True, env=env)
    session.run("npm", "run", "test:browser", external=True, env=env)


@nox.session(python=PY, tags=["ci"])
def chart(session: nox.Session) -> None:
    """The umbrella chart: helm lint, Kubernetes schemas, policies, values schema."""
    session.install("-r", "tests/chart/requirements.txt")
    helm_dir = session.run("bash", "tools/install-helm.sh", external=True, silent=True)
    assert isinstance(helm_dir, str)
    path = f"{helm_dir.strip().splitlines()[-1]}{os.pathsep}{os.environ['PATH']}"
    session.run("pytest", "tests/chart", *session.posargs, env={"PATH": path})
