"""First contact (issue 21): the README's ``nox -s bootstrap`` in a fresh clone, from nothing.

A new user's clone has no ``.lumina/`` and no ``config/secrets.env``, and the cluster
has no namespace of the app. Bootstrap must bring everything up and print a URL that
answers, in a namespace that enforces the restricted Pod Security profile; a second
bootstrap must then change nothing (the same Helm revision). The environment is this
module's own (namespace, NodePort, status port through ``LUMINA_*``), so a developer's
stack in namespace ``lumina`` is never touched; the code path is the default one.

In CI (``.ci/run`` sets ``E2E_FROM_EMPTY=1``) the e2e session first wipes the
local cluster's state (``lumina-reconcile cluster wipe``: etcd, images, node registry,
kubeconfig — not the compile cache), so this bootstrap also brings the cluster up from
empty; the test then checks that it did.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import environments
import pytest
from conftest import ROOT, run

ENVIRONMENT = environments.for_module(__file__)
FROM_EMPTY = os.environ.get("E2E_FROM_EMPTY") == "1"


def _nox() -> list[str]:
    """The nox the e2e session itself runs under (``E2E_NOX_COMMAND``), else ``nox`` on PATH."""
    return shlex.split(os.environ.get("E2E_NOX_COMMAND", "nox"))


def _bootstrap(clone: pathlib.Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {
        # The settings a user would put in config/lumina.toml for a second environment.
        "LUMINA_NAMESPACE": ENVIRONMENT.namespace,
        "LUMINA_NODE_PORT": str(ENVIRONMENT.node_port),
        "LUMINA_STATUS_PORT": str(ENVIRONMENT.status_port),
        "LUMINA_VALUES": json.dumps(environments.SMALL_REQUESTS),
    }
    started = time.monotonic()
    result = subprocess.run(
        [*_nox(), "-s", "bootstrap"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=2400,
        check=False,
        env={**os.environ, **env},
    )
    return result, time.monotonic() - started


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """A new user's clone: ``git clone`` of this checkout's HEAD, nothing else."""
    target = tmp_path_factory.mktemp("first-contact") / "lumina"
    run("git", "clone", "-q", str(ROOT), str(target))
    run("git", "checkout", "-q", "-B", "main", cwd=target)
    yield target
    stop = {**os.environ, "LUMINA_NAMESPACE": ENVIRONMENT.namespace}
    subprocess.run(
        [str(target / ".nox" / "bootstrap" / "bin" / "lumina-reconcile"), "stop"],
        cwd=target,
        capture_output=True,
        timeout=180,
        check=False,
        env=stop,
    )
    environments.delete(ENVIRONMENT, wait=False)


def _helm_revision() -> int:
    out = run(
        environments.helm_binary(),
        "--kubeconfig",
        str(environments.CACHE / "cluster" / "admin.kubeconfig"),
        "--kube-context",
        "lumina-local",
        "status",
        ENVIRONMENT.release,
        "-n",
        ENVIRONMENT.namespace,
        "-o",
        "json",
    ).stdout
    return int(json.loads(out)["version"])


def test_bootstrap_from_nothing_serves_and_a_second_one_changes_nothing(
    clone: pathlib.Path,
) -> None:
    assert not (clone / ".lumina").exists()
    assert not (clone / "config" / "secrets.env").exists()
    existing = run(
        *environments.kubectl_command(), "get", "namespace", ENVIRONMENT.namespace, check=False
    )
    assert existing.returncode != 0, f"namespace {ENVIRONMENT.namespace} exists before bootstrap"

    first, seconds = _bootstrap(clone)
    said = first.stdout + first.stderr
    assert first.returncode == 0, said[-6000:]
    print(
        f"first bootstrap: {seconds:.0f}s; " + " | ".join(re.findall(r"bootstrap steps: .*", said))
    )
    if FROM_EMPTY:
        # The cluster was wiped before this module: bootstrap started it from empty.
        assert "starting" in said and "cluster up in" in said, said[-6000:]
    assert f"Lumina Todo: {ENVIRONMENT.url}" in said, said[-3000:]
    with urllib.request.urlopen(f"{ENVIRONMENT.url}/api/health", timeout=10) as answer:
        assert answer.status == 200
    labels = json.loads(
        run(
            *environments.kubectl_command(), "get", "namespace", ENVIRONMENT.namespace, "-o", "json"
        ).stdout
    )["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted", labels
    assert "JWT_SECRET_KEY=" in (clone / "config" / "secrets.env").read_text()
    revision = _helm_revision()

    second, seconds = _bootstrap(clone)
    said = second.stdout + second.stderr
    assert second.returncode == 0, said[-6000:]
    print(f"second bootstrap: {seconds:.0f}s")
    assert _helm_revision() == revision, said[-3000:]
    assert "already runs this state" in said or "nothing-to-do" in said, said[-3000:]
