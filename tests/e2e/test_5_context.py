"""The ``context`` provider on a real API server: refuses what it must, deploys otherwise.

A kubeconfig of three contexts is written for the local cluster's API server, the way a
team hands one out: ``reader`` (a ServiceAccount that may only read in this module's
namespace),
``nowhere`` (an API server address nobody listens on) and ``team`` (full rights). The
reconciler, told ``LUMINA_CLUSTER=context``, must refuse the first two before any helm
call, naming the context and the reason, and deploy a chart change through the third
without starting or stopping anything.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator

import environments
import pytest
import yaml
from conftest import GIT_ENV, commit, helm_revision, kubectl, run

NAMESPACE = environments.for_module(__file__).namespace
ACCOUNT = "lumina-e2e-reader"


def _once(repo: pathlib.Path, kubeconfig: pathlib.Path, context: str) -> tuple[int, str]:
    env = {
        **os.environ,
        **GIT_ENV,
        "KUBECONFIG": str(kubeconfig),
        "LUMINA_CLUSTER": "context",
        "LUMINA_KUBE_CONTEXT": context,
    }
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "once", "--mode", "commit", "--repo", str(repo)],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def team_kubeconfig(
    helm_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory, workspace: pathlib.Path
) -> Iterator[pathlib.Path]:
    """The team's kubeconfig, for this module's environment (installed by ``workspace``)."""
    k = kubectl(helm_env)
    reader_rbac = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: {ACCOUNT}, namespace: {NAMESPACE}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {ACCOUNT}, namespace: {NAMESPACE}}}
rules:
  - apiGroups: ["", "apps"]
    resources: ["deployments", "secrets", "services", "pods"]
    verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {ACCOUNT}, namespace: {NAMESPACE}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {ACCOUNT}}}
subjects: [{{kind: ServiceAccount, name: {ACCOUNT}, namespace: {NAMESPACE}}}]
"""
    subprocess.run([*k, "apply", "-f", "-"], input=reader_rbac, text=True, check=True)
    token = run(*k, "-n", NAMESPACE, "create", "token", ACCOUNT, "--duration", "1h").stdout
    admin = yaml.safe_load(pathlib.Path(helm_env["kubeconfig"]).read_text())
    cluster = admin["clusters"][0]["cluster"]
    team = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "shared", "cluster": cluster},
            {
                "name": "gone",
                "cluster": {**cluster, "server": "https://127.0.0.1:9"},
            },
        ],
        "users": [
            {"name": "reader", "user": {"token": token.strip()}},
            {"name": "admin", "user": admin["users"][0]["user"]},
        ],
        "contexts": [
            {"name": "reader", "context": {"cluster": "shared", "user": "reader"}},
            {"name": "nowhere", "context": {"cluster": "gone", "user": "admin"}},
            {"name": "team", "context": {"cluster": "shared", "user": "admin"}},
        ],
        "current-context": "team",
    }
    path = tmp_path_factory.mktemp("context") / "team.kubeconfig"
    path.write_text(yaml.safe_dump(team))
    path.chmod(0o600)
    yield path
    subprocess.run(
        [*k, "-n", NAMESPACE, "delete", "rolebinding,role,serviceaccount", ACCOUNT],
        capture_output=True,
        check=False,
    )


def test_a_context_that_may_not_write_the_namespace_is_refused(
    workspace: pathlib.Path, team_kubeconfig: pathlib.Path, helm_env: dict[str, str]
) -> None:
    before = helm_revision(helm_env, NAMESPACE)
    code, output = _once(workspace, team_kubeconfig, "reader")
    assert code != 0, output
    assert "kube context reader" in output and f"namespace {NAMESPACE}" in output, output
    assert "may not write" in output, output
    assert helm_revision(helm_env, NAMESPACE) == before


def test_a_context_whose_api_server_does_not_answer_is_refused(
    workspace: pathlib.Path, team_kubeconfig: pathlib.Path, helm_env: dict[str, str]
) -> None:
    before = helm_revision(helm_env, NAMESPACE)
    code, output = _once(workspace, team_kubeconfig, "nowhere")
    assert code != 0, output
    assert "kube context nowhere" in output and "not reachable" in output, output
    assert "Traceback" not in output, output
    assert helm_revision(helm_env, NAMESPACE) == before


def test_a_writable_context_deploys_a_chart_change_and_starts_nothing(
    workspace: pathlib.Path, team_kubeconfig: pathlib.Path, helm_env: dict[str, str]
) -> None:
    # First bring the release to the clone's state with the local provider, so the
    # change below needs no image (a shared cluster gets images from a registry only).
    settled = run(
        sys.executable, "-m", "reconciler", "once", "--mode", "commit", "--repo",
        str(workspace), cwd=workspace, check=False,
    )  # fmt: skip
    assert settled.returncode == 0, settled.stdout + settled.stderr
    before = helm_revision(helm_env, NAMESPACE)
    pids = sorted((pathlib.Path.home() / ".cache/lumina/cluster/pids").glob("*.pid"))
    running = {pid.name: pid.read_text() for pid in pids}

    chart = workspace / "helm/lumina-todo/Chart.yaml"
    chart.write_text(chart.read_text() + "# e2e: deployed through a named context\n")
    commit(workspace, "chart: through the team context")
    code, output = _once(workspace, team_kubeconfig, "team")
    assert code == 0, output
    assert helm_revision(helm_env, NAMESPACE) == before + 1
    # The provider neither started nor restarted any component of the cluster.
    assert {pid.name: pid.read_text() for pid in pids} == running
    assert "starting" not in output, output
