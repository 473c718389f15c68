"""Helpers shared by the fault and security suites: the real stack, driven from outside.

Both suites run against the local cluster; every module has an environment of its own
(``tests/environments.py``: namespace, release, NodePort), installed from nothing by the
reconciler before its first test and deleted after its last — the autouse fixture
``environment`` makes it the one these helpers act on (:func:`current`). A test that
changes the repository works in a ``git clone`` of this checkout whose settings name
that environment, and deploys with ``python -m reconciler once --repo CLONE --mode
commit``. The module has a distinct name (not ``conftest``) so both suites' conftests
can import it without shadowing each other.
"""

from __future__ import annotations

import base64
import glob
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
import environments  # tests/, put on the path just above

ROOT = pathlib.Path(__file__).resolve().parents[2]
RELEASE = "lumina-todo"
BACKEND_MAIN = "services/backend/app/main.py"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Lumina Faults",
    "GIT_AUTHOR_EMAIL": "faults@lumina.invalid",
    "GIT_COMMITTER_NAME": "Lumina Faults",
    "GIT_COMMITTER_EMAIL": "faults@lumina.invalid",
}
CACHE = pathlib.Path.home() / ".cache" / "lumina"
KUBECONFIG = CACHE / "cluster" / "admin.kubeconfig"
CONTEXT = "lumina-local"


_current: list[tuple[environments.Environment, pathlib.Path]] = []


def current() -> environments.Environment:
    """The environment of the module running now (set by the ``environment`` fixture)."""
    assert _current, "no environment: the module's `environment` fixture has not run"
    return _current[-1][0]


def environment_repo() -> pathlib.Path:
    """The clone that installed the current environment (its secrets are the live ones)."""
    assert _current, "no environment: the module's `environment` fixture has not run"
    return _current[-1][1]


run = environments.run


def reconcile(
    repo: pathlib.Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    return run(
        sys.executable,
        "-m",
        "reconciler",
        *args,
        "--repo",
        str(repo),
        cwd=repo,
        check=check,
        env=env,
        timeout=timeout,
    )


def once(repo: pathlib.Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """One commit-mode cycle in ``repo``: exit code and everything it printed."""
    result = reconcile(repo, "once", "--mode", "commit", check=False, env=env)
    return result.returncode, result.stdout + result.stderr


def daemon(
    repo: pathlib.Path, env: dict[str, str] | None = None, mode: str = "commit"
) -> subprocess.Popen[str]:
    """``reconciler run --mode MODE`` on ``repo``, output merged into one pipe.

    The status endpoint gets a free port unless ``env`` names one: 8787 may belong to
    the daemon of this checkout.
    """
    env = {"LUMINA_STATUS_PORT": str(free_port()), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(repo), "--mode", mode],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **GIT_ENV, **env},
    )


class LogTail:
    """Reads a daemon's output in a thread so a test can wait for a line and keep it all."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or (self._process.poll() is not None and not self._thread.is_alive()):
                    raise AssertionError(
                        f"no log line {what} within {timeout:.0f}s "
                        f"(daemon exit {self._process.poll()}); log:\n" + self.text()[-4000:]
                    )
                self._changed.wait(min(left, 1.0))

    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def join(self, timeout: float = 30) -> None:
        self._thread.join(timeout)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 300) -> int:
    process.send_signal(sig)
    return process.wait(timeout=timeout)


def _runs(pid: int, program: bytes) -> bool:
    # An exited process may linger as a zombie until init reaps it: its cmdline is
    # empty then, which is what down.sh's pid_alive checks too.
    try:
        return program in pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def stop_process(pidfile: pathlib.Path, program: str, grace: float) -> None:
    """Stop the ``program`` whose PID ``pidfile`` holds, as down.sh does: TERM, then KILL."""
    pid = int(pidfile.read_text().strip())
    assert _runs(pid, program.encode()), f"PID {pid} in {pidfile} is not {program}"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _runs(pid, program.encode()) and time.monotonic() < deadline:
        time.sleep(0.5)
    if _runs(pid, program.encode()):
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
    assert not _runs(pid, program.encode()), f"{program} (PID {pid}) did not stop"


def tool(name: str, pattern: str) -> str:
    """A cluster tool the bootstrap installed under ~/.cache/lumina, or one on PATH."""
    found = sorted(glob.glob(str(CACHE / pattern))) or (
        [path] if (path := shutil.which(name)) else []
    )
    if not found:
        raise AssertionError(f"{name} is missing (looked in {CACHE / pattern} and PATH)")
    return found[-1]


def kubectl(
    *args: str, check: bool = True, timeout: float = 300, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run(
        tool("kubectl", "k8s/*/bin/kubectl"),
        "--kubeconfig",
        str(KUBECONFIG),
        "--context",
        CONTEXT,
        *args,
        check=check,
        timeout=timeout,
        stdin=stdin,
    )


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(
        tool("helm", "bin/helm"),
        "--kubeconfig",
        str(KUBECONFIG),
        "--kube-context",
        CONTEXT,
        *args,
        check=check,
    )


def release_status() -> dict[str, Any]:
    return dict(json.loads(helm("status", RELEASE, "-n", current().namespace, "-o", "json").stdout))


def helm_revision() -> int:
    return int(release_status()["version"])


def helm_history() -> list[dict[str, Any]]:
    out = helm("history", RELEASE, "-n", current().namespace, "-o", "json", "--max", "50").stdout
    return list(json.loads(out))


def assert_no_pending_release() -> None:
    statuses = [str(entry["status"]) for entry in helm_history()]
    assert not any(status.startswith("pending") for status in statuses), statuses
    assert release_status()["info"]["status"] == "deployed", statuses


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError, AssertionError):
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def clone(where: pathlib.Path, secrets_env: str | None = None) -> pathlib.Path:
    """A clone of this checkout's committed HEAD whose settings name the current
    environment, with that environment's secrets (the ones it was installed with).

    ``secrets_env`` replaces the secrets file's content (the git-ignored source).
    """
    target = environments.clone(current(), where / "repo", secrets_from=environment_repo())
    if secrets_env is not None:
        copied = target / "config" / "secrets.env"
        copied.write_text(secrets_env)
        copied.chmod(0o600)
    return target


def commit(repo: pathlib.Path, message: str) -> str:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", message, cwd=repo)
    return run("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()


def change_backend(repo: pathlib.Path, why: str) -> None:
    """A backend-only change: a comment line in its main module (a new image digest)."""
    path = repo / BACKEND_MAIN
    path.write_text(path.read_text() + f"\n# faults: {why} {time.time_ns()}\n")
    commit(repo, f"backend: {why}")


def change_chart(repo: pathlib.Path, why: str) -> None:
    """A chart-only change that rolls no pod: a comment in the umbrella chart's Chart.yaml."""
    path = repo / "helm/lumina-todo/Chart.yaml"
    path.write_text(path.read_text() + f"# faults: {why} {time.time_ns()}\n")
    commit(repo, f"chart: {why}")


def status_json(repo: pathlib.Path) -> dict[str, Any]:
    return dict(json.loads(reconcile(repo, "status", "--json").stdout))


def last_cycle(repo: pathlib.Path) -> dict[str, Any]:
    found = status_json(repo)["last_cycle"]
    assert isinstance(found, dict), found
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deployed_secret(secret: str, key: str) -> str:
    """A value the release runs with, read from its Kubernetes Secret (never printed).

    The cluster is the source of truth: a fresh checkout has no ``config/secrets.env``
    and the reconciler keeps the generated values the cluster already holds.
    """
    namespace = current().namespace
    found = kubectl(
        "-n", namespace, "get", "secret", secret, "-o", f"jsonpath={{.data.{key}}}"
    ).stdout.strip()
    if not found:
        raise AssertionError(f"Secret {secret} in {namespace} has no key {key}")
    return base64.b64decode(found).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(claims: dict[str, Any], key: str, alg: str = "HS256") -> str:
    """A JWT built by hand (header, claims, HMAC-SHA256), the way an attacker would."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    if alg == "none":
        return f"{header}.{body}."
    signature = hmac.new(key.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def signed_in(email: str, password: str = "correct horse battery staple") -> httpx.Client:
    """A browser-like session against the environment's NodePort, registered and signed in."""
    url = current().url
    client = httpx.Client(base_url=url, timeout=30)
    wait_for(lambda: client.get("/api/health").status_code == 200, 120, f"the frontend on {url}")
    answers: list[httpx.Response] = []

    def register() -> bool:
        # 502/503 while the backend (Recreate) starts or its name does not resolve yet.
        answers.append(
            client.post("/api/auth/register", json={"email": email, "password": password})
        )
        return answers[-1].status_code not in (502, 503, 504)

    wait_for(register, 180, "the backend behind the frontend")
    assert answers[-1].status_code == 201, answers[-1].text
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return client


def backend_sql(statement: str) -> str:
    """Run one SQL statement in the backend pod with its own Python; the first column."""
    code = (
        "import sqlite3;c=sqlite3.connect('/data/lumina.db');"
        f"print(c.execute({statement!r}).fetchone()[0])"
    )
    out = kubectl("exec", "-n", current().namespace, "deploy/backend", "--", "python", "-c", code)
    return out.stdout.strip()


def scan(haystacks: Sequence[tuple[str, str]], needles: Sequence[str]) -> list[str]:
    """Where any needle occurs: the names of the haystacks, never the needle itself."""
    return [
        f"{where} holds secret #{index}"
        for where, text in haystacks
        for index, needle in enumerate(needles)
        if needle in text
    ]


def files_text(root: pathlib.Path) -> Iterator[tuple[str, str]]:
    for path in sorted(root.rglob("*")):
        if path.is_file():
            yield str(path), path.read_bytes().decode("utf-8", "replace")


#: Figures the suites add to, printed by the session's closing summary.
FIGURES: dict[str, int] = {
    "faults injected": 0,
    "faults survived": 0,
    "writes acknowledged": 0,
    "writes present": 0,
    "bad inputs tried": 0,
    "bad inputs handled cleanly": 0,
    "attacks tried": 0,
    "attacks denied": 0,
}


def count(name: str, amount: int = 1) -> None:
    FIGURES[name] = FIGURES.get(name, 0) + amount


_printed: list[bool] = []


def print_figures(write: Callable[[str], None]) -> None:
    """The closing figures, once per session even when both suites' conftests ask."""
    if _printed or not any(FIGURES.values()):
        return
    _printed.append(True)
    write("lumina faults/security figures:")
    for name, value in FIGURES.items():
        write(f"  {name:28} {value}")


# Fixtures both suites use; each conftest imports them (pytest finds fixtures by name
# in a conftest's namespace), so they are written once.


@pytest.fixture(scope="module", autouse=True)
def environment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[environments.Environment]:
    """The module's own environment, installed from nothing, deleted afterwards."""
    found = environments.for_module(request.path)
    for repo in environments.installed(found, tmp_path_factory.mktemp("environment")):
        _current.append((found, repo))
        try:
            assert_no_pending_release()
            yield found
        finally:
            _current.pop()


@pytest.fixture
def workspace(tmp_path: pathlib.Path, environment: environments.Environment) -> pathlib.Path:
    """A fresh clone of this checkout that deploys the module's release in commit mode."""
    return clone(tmp_path)
