"""One environment of the app per test module: its own namespace, release and NodePort.

Who uses it: the conftests of ``tests/e2e``, ``tests/faults`` and ``tests/security``.
Each module gets an :class:`Environment` (namespace ``t-<suite>-<module>``, a NodePort
and a status port of its own, fixed by the module's place in the sorted list of
modules, so two modules running side by side never share one). Its clone of this
checkout's HEAD carries the environment in ``config/lumina.toml`` (committed there),
and the reconciler installs it **from nothing** — no namespace, no ``.lumina/``, no
``config/secrets.env`` — before the module's first test; afterwards the release and
the namespace are deleted. No module depends on what another left.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUITES = ("e2e", "faults", "security")
CACHE = pathlib.Path(os.environ.get("LUMINA_CACHE", pathlib.Path.home() / ".cache" / "lumina"))
FIRST_NODE_PORT = 30100
FIRST_STATUS_PORT = 18700
RELEASE = "lumina-todo"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Lumina Tests",
    "GIT_AUTHOR_EMAIL": "tests@lumina.invalid",
    "GIT_COMMITTER_NAME": "Lumina Tests",
    "GIT_COMMITTER_EMAIL": "tests@lumina.invalid",
}
#: Requests small enough that the CI node (2 cores) holds two environments side by side
#: with their trial pods; the limits (what a pod may use) stay the chart's.
SMALL_REQUESTS = {
    service: {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"}}}
    for service in ("frontend", "backend", "chatbot")
}


@dataclasses.dataclass(frozen=True)
class Environment:
    """Where one module's app lives."""

    namespace: str
    node_port: int
    status_port: int
    release: str = RELEASE
    #: chart values this module's environment sets beyond the defaults: (dotted key
    #: under ``values.``, TOML literal), e.g. ("backend.config.authAttempts.perClient", "500")
    values: tuple[tuple[str, str], ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.node_port}"

    def settings_toml(self) -> str:
        """What the environment's clone adds to ``config/lumina.toml``."""
        lines = [
            "",
            "# This clone's test environment (tests/environments.py).",
            f'namespace = "{self.namespace}"',
            f"node_port = {self.node_port}",
            f"status_port = {self.status_port}",
        ]
        for service, values in SMALL_REQUESTS.items():
            requests = values["resources"]["requests"]
            lines.append(
                f'values.{service}.resources.requests = {{ cpu = "{requests["cpu"]}", '
                f'memory = "{requests["memory"]}" }}'
            )
        lines += [f"values.{key} = {literal}" for key, literal in self.values]
        return "\n".join(lines) + "\n"


def modules() -> list[str]:
    """Every module that gets an environment, as ``suite/test_x.py``, sorted."""
    found = []
    for suite in SUITES:
        for path in sorted((ROOT / "tests" / suite).glob("test_*.py")):
            found.append(f"{suite}/{path.name}")
    return found


def for_module(path: str | pathlib.Path, values: tuple[tuple[str, str], ...] = ()) -> Environment:
    """The environment of the module at ``path`` (a test file of one of the suites),
    with the chart ``values`` that module sets (its ``ENVIRONMENT_VALUES``)."""
    file = pathlib.Path(path).resolve()
    relative = f"{file.parent.name}/{file.name}"
    index = modules().index(relative)
    stem = file.stem.removeprefix("test_").replace("_", "-")
    namespace = f"t-{file.parent.name}-{stem}"[:63].rstrip("-")
    return Environment(namespace, FIRST_NODE_PORT + index, FIRST_STATUS_PORT + index, values=values)


def run(
    *args: str,
    cwd: pathlib.Path = ROOT,
    check: bool = True,
    timeout: float = 900,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command of the test, as a committer of its own; fail with its output."""
    result = subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
        input=stdin,
        env={**os.environ, **GIT_ENV, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def clone(
    environment: Environment, target: pathlib.Path, *, secrets_from: pathlib.Path | None = None
) -> pathlib.Path:
    """A clone of this checkout's HEAD on ``main`` whose committed settings name
    ``environment``; with ``secrets_from``, that repository's ``config/secrets.env``
    (so a second clone of one environment keeps its JWT key)."""
    run("git", "clone", "-q", str(ROOT), str(target))
    # The settings track `main`; a checkout of another branch (a worktree) still tests.
    run("git", "checkout", "-q", "-B", "main", cwd=target)
    settings_file = target / "config" / "lumina.toml"
    ours = ("namespace", "node_port", "status_port", "values")
    kept = [
        line
        for line in settings_file.read_text().splitlines()
        if line.split("=", 1)[0].strip().split(".", 1)[0] not in ours
    ]
    settings_file.write_text("\n".join(kept) + "\n" + environment.settings_toml())
    run("git", "commit", "-q", "-am", f"test environment {environment.namespace}", cwd=target)
    source = (secrets_from / "config" / "secrets.env") if secrets_from else None
    if source is not None and source.exists():
        copied = target / "config" / "secrets.env"
        copied.write_bytes(source.read_bytes())
        copied.chmod(0o600)
    return target


def kubectl_command() -> list[str]:
    """kubectl of the local cluster's build (else PATH), pointed at the local cluster."""
    cached = sorted(glob.glob(str(CACHE / "k8s" / "*" / "bin" / "kubectl")))
    binary = cached[-1] if cached else shutil.which("kubectl")
    assert binary, "kubectl is needed (built by the local cluster, or on PATH)"
    kubeconfig = CACHE / "cluster" / "admin.kubeconfig"
    return [binary, "--kubeconfig", str(kubeconfig), "--context", "lumina-local"]


def _namespace_exists(namespace: str) -> bool:
    found = run(*kubectl_command(), "get", "namespace", namespace, "-o", "json", check=False)
    return found.returncode == 0 and bool(json.loads(found.stdout or "{}"))


def delete(environment: Environment, timeout: float = 180, *, wait: bool = True) -> None:
    """Uninstall the release and delete the namespace (its PVC and volume with it).
    With ``wait``, returns once the namespace is gone, so its NodePort and volume are free
    again; without it the cluster finishes the deletion while later modules run (each
    module has its own namespace and port, and its install deletes and waits first)."""
    helm = helm_binary()
    if helm:
        run(
            helm,
            "--kubeconfig",
            str(CACHE / "cluster" / "admin.kubeconfig"),
            "--kube-context",
            "lumina-local",
            "uninstall",
            environment.release,
            "-n",
            environment.namespace,
            *(("--wait", "--timeout", "120s") if wait else ()),
            check=False,
            timeout=200,
        )
    run(
        *kubectl_command(),
        "delete",
        "namespace",
        environment.namespace,
        "--ignore-not-found",
        "--wait=false",
        check=False,
    )
    deadline = time.monotonic() + timeout
    while wait and _namespace_exists(environment.namespace):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"namespace {environment.namespace} still exists after {timeout:.0f}s"
            )
        time.sleep(1)


def helm_binary() -> str:
    """The helm bootstrap installed under the cache, else the one on PATH."""
    cached = CACHE / "bin" / "helm"
    found = str(cached) if cached.is_file() else shutil.which("helm")
    assert found, "helm is needed (built by tools/install-helm.sh, or on PATH)"
    return found


def reconcile(
    repo: pathlib.Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "reconciler", *args, "--repo", str(repo)]
    return run(*command, cwd=repo, check=check, timeout=timeout)


def install(environment: Environment, repo: pathlib.Path) -> None:
    """Install the environment from nothing with the reconciler (``once --mode commit``);
    what a killed earlier run left of it is deleted first."""
    delete(environment)
    assert not (repo / ".lumina").exists() and not (repo / "config" / "secrets.env").exists()
    # Two installs at a time: more side by side compete for two cores (their pods' starts
    # are CPU-bound), one at a time made four workers queue behind each other's installs.
    with _install_slot():
        result = reconcile(repo, "once", "--mode", "commit", check=False)
    assert result.returncode == 0, (
        f"installing {environment.namespace} from nothing failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )


INSTALL_SLOTS = 2


@contextlib.contextmanager
def _install_slot() -> Iterator[None]:
    """One of ``INSTALL_SLOTS`` lock files, held for the install (any process's pytest)."""
    with contextlib.ExitStack() as stack:
        files = [
            stack.enter_context(open(f"/tmp/lumina-test-install.{n}.lock", "w"))
            for n in range(INSTALL_SLOTS)
        ]
        while True:
            for lock in files:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                yield
                return
            time.sleep(0.5)


def installed(environment: Environment, where: pathlib.Path) -> Iterator[pathlib.Path]:
    """For a module-scoped fixture: the environment's clone, installed from nothing,
    deleted with its namespace when the module is done."""
    repo = clone(environment, where / "repo")
    try:
        install(environment, repo)
        yield repo
    finally:
        reconcile(repo, "stop", check=False, timeout=180)
        delete(environment, wait=False)
