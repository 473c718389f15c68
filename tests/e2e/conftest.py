"""Fixtures for end-to-end tests on the real cluster that ``nox -s e2e`` brought up.

Every module runs against an environment of its own (``tests/environments.py``): a
namespace, release and NodePort installed from nothing by the reconciler from a clone
of this checkout (``workspace``; the project's own work tree is never touched), and
deleted when the module is done. Nothing here reads or changes namespace ``lumina``.
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import environments
import httpx
import pytest

from reconciler import settings
from reconciler.cli import wiring
from reconciler.cluster import kube

ROOT = pathlib.Path(__file__).resolve().parents[2]
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Lumina E2E",
    "GIT_AUTHOR_EMAIL": "e2e@lumina.invalid",
    "GIT_COMMITTER_NAME": "Lumina E2E",
    "GIT_COMMITTER_EMAIL": "e2e@lumina.invalid",
}


run = environments.run


def reconcile(
    repo: pathlib.Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run(
        sys.executable, "-m", "reconciler", *args, "--repo", str(repo), cwd=repo, check=check
    )


@pytest.fixture(scope="session")
def config() -> settings.Settings:
    return settings.load_settings(ROOT)


@pytest.fixture(scope="session")
def cluster(config: settings.Settings) -> kube.Kube:
    info = wiring.choose_provider(config).ensure_up()
    return kube.Kube(info.kubeconfig, info.context)


@pytest.fixture(scope="session")
def helm_env(config: settings.Settings) -> dict[str, str]:
    info = wiring.choose_provider(config).ensure_up()
    return {
        "helm": wiring.helm_executable(),
        "kubeconfig": str(info.kubeconfig),
        "context": info.context,
    }


def _helm_status(helm_env: dict[str, str], namespace: str) -> dict[str, Any]:
    out = run(
        helm_env["helm"],
        "--kubeconfig",
        helm_env["kubeconfig"],
        "--kube-context",
        helm_env["context"],
        "status",
        "lumina-todo",
        "-n",
        namespace,
        "-o",
        "json",
    ).stdout
    status: dict[str, Any] = json.loads(out)
    return status


def helm_revision(helm_env: dict[str, str], namespace: str) -> int:
    return int(_helm_status(helm_env, namespace)["version"])


def helm_status(helm_env: dict[str, str], namespace: str) -> str:
    return str(_helm_status(helm_env, namespace)["info"]["status"])


def kubectl(helm_env: dict[str, str]) -> list[str]:
    """kubectl of the local cluster's build (else PATH), pointed at the test cluster."""
    cached = sorted(glob.glob(os.path.expanduser("~/.cache/lumina/k8s/*/bin/kubectl")))
    binary = cached[-1] if cached else shutil.which("kubectl")
    assert binary, "kubectl is needed (built by the local cluster, or on PATH)"
    return [binary, "--kubeconfig", helm_env["kubeconfig"], "--context", helm_env["context"]]


def pod_uids(cluster: kube.Kube, service: str, namespace: str) -> set[str]:
    return {
        str(pod["metadata"]["uid"])
        for pod in cluster.list(
            "v1", "Pod", namespace, label_selector=f"app.kubernetes.io/name={service}"
        )
        if not pod["metadata"].get("deletionTimestamp")
    }


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


@pytest.fixture(scope="module")
def environment(request: pytest.FixtureRequest) -> environments.Environment:
    """This module's namespace, release and NodePort."""
    return environments.for_module(request.path, getattr(request.module, "ENVIRONMENT_VALUES", ()))


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, environment: environments.Environment
) -> Iterator[pathlib.Path]:
    """A clone of this repository that owns the module's environment, installed from
    nothing before the first test and deleted after the last."""
    for repo in environments.installed(environment, tmp_path_factory.mktemp("e2e")):
        _BASELINES[repo] = run("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()
        yield repo


#: workspace -> the commit it was installed at, to recover to after a failed test
_BASELINES: dict[pathlib.Path, str] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _recover_after_a_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a failed test, the module's workspace goes back to the commit it was
    installed at and converges, so one failure stays one failure: the next test does
    not meet the broken commit (or the known failure) the failed one left."""
    yield
    if not request.node.stash.get(_FAILED, False) or "workspace" not in request.fixturenames:
        return
    repo: pathlib.Path = request.getfixturevalue("workspace")
    baseline = _BASELINES.get(repo)
    if baseline is None:
        return
    run("git", "checkout", baseline, "--", ".", cwd=repo)
    added = run("git", "diff", "--name-only", "--diff-filter=A", baseline, cwd=repo).stdout
    for name in added.split():
        (repo / name).unlink(missing_ok=True)
    if run("git", "status", "--porcelain", cwd=repo).stdout.strip():
        commit(repo, "e2e: back to the installed commit after a failed test")
    done = reconcile(repo, "once", "--mode", "commit", check=False)
    print(f"recovered {repo} to {baseline[:12]}: exit {done.returncode}", file=sys.stderr)


def commit(repo: pathlib.Path, message: str) -> str:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", message, cwd=repo)
    return run("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()


@pytest.fixture(scope="module")
def user(workspace: pathlib.Path, environment: environments.Environment) -> Iterator[httpx.Client]:
    """A signed-in browser-like session against the module environment's NodePort."""
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse battery staple"
    with httpx.Client(base_url=environment.url, timeout=20) as client:
        wait_for(
            lambda: client.get("/api/health").status_code == 200,
            120,
            f"the frontend on {environment.url}",
        )
        account = {"email": email, "password": password}
        answers: list[httpx.Response] = []

        def register() -> bool:
            # 502/503 while a backend pod (Recreate) is still starting: try again.
            answers.append(client.post("/api/auth/register", json=account))
            return answers[-1].status_code not in (502, 503, 504)

        wait_for(register, 180, "the backend behind the frontend")
        assert answers[-1].status_code == 201, answers[-1].text
        signed_in = client.post("/api/auth/login", json={"email": email, "password": password})
        assert signed_in.status_code == 200, signed_in.text
        yield client


def json_of(response: httpx.Response) -> Any:
    assert response.status_code < 400, f"{response.status_code}: {response.text}"
    return response.json()
