"""The seed's success table holds on a stack the reconciler installed from nothing
(this module's own environment: namespace, release and NodePort)."""

from __future__ import annotations

import pathlib

import environments
import httpx
import pytest
from conftest import helm_status, kubectl, run, wait_for

from reconciler.cluster import kube

ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace
FRONTEND = ENVIRONMENT.url

pytestmark = pytest.mark.usefixtures("workspace")


def _app_pods(cluster: kube.Kube) -> dict[str, list[dict]]:
    pods = cluster.list(
        "v1", "Pod", NAMESPACE, label_selector="app.kubernetes.io/instance=lumina-todo"
    )
    by_service: dict[str, list[dict]] = {}
    for pod in pods:
        annotations = pod["metadata"].get("annotations", {})
        if pod["metadata"].get("deletionTimestamp") or "helm.sh/hook" in annotations:
            continue
        by_service.setdefault(pod["metadata"]["labels"]["app.kubernetes.io/name"], []).append(pod)
    return by_service


def _all_ready(cluster: kube.Kube) -> bool:
    by_service = _app_pods(cluster)
    return set(by_service) >= {"frontend", "backend", "chatbot"} and all(
        pod["status"].get("phase") == "Running"
        and all(c["ready"] for c in pod["status"].get("containerStatuses", []))
        for pods in by_service.values()
        for pod in pods
    )


def test_all_pods_running_and_ready(cluster: kube.Kube) -> None:
    # A rollout may still be finishing right after bootstrap: wait, bounded.
    wait_for(lambda: _all_ready(cluster), 180, "every pod of the release Running and Ready")
    assert len(_app_pods(cluster)["backend"]) == 1


def test_services_pvc_secrets_and_namespace(cluster: kube.Kube, helm_env: dict[str, str]) -> None:
    services = {
        svc["metadata"]["name"]: svc["spec"] for svc in cluster.list("v1", "Service", NAMESPACE)
    }
    assert services["frontend"]["type"] == "NodePort"
    assert services["frontend"]["ports"][0]["nodePort"] == ENVIRONMENT.node_port
    assert (
        services["backend"]["type"] == "ClusterIP"
        and services["backend"]["ports"][0]["port"] == 8000
    )
    assert (
        services["chatbot"]["type"] == "ClusterIP"
        and services["chatbot"]["ports"][0]["port"] == 8001
    )
    claim = cluster.get("v1", "PersistentVolumeClaim", NAMESPACE, "backend-data")
    assert claim is not None and claim["status"]["phase"] == "Bound"
    assert cluster.get("v1", "Secret", NAMESPACE, "backend-secrets") is not None
    assert cluster.get("v1", "Secret", NAMESPACE, "chatbot-secrets") is not None
    namespace = cluster.get("v1", "Namespace", None, NAMESPACE)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert helm_status(helm_env, NAMESPACE) == "deployed"


def test_frontend_answers_on_the_node_port() -> None:
    response = httpx.get(f"{FRONTEND}/api/health", timeout=10)
    assert response.status_code == 200
    page = httpx.get(f"{FRONTEND}/sign-in", timeout=20)
    assert page.status_code == 200 and "<html" in page.text.lower()


def test_backend_and_chatbot_health_from_inside_the_cluster(helm_env: dict[str, str]) -> None:
    script = (
        f"Promise.all(['http://backend.{NAMESPACE}.svc.cluster.local:8000/api/health',"
        f"'http://chatbot.{NAMESPACE}.svc.cluster.local:8001/health']"
        ".map(u => fetch(u).then(r => r.status)))"
        ".then(s => console.log(s.join(' ')))"
    )
    out = run(
        *kubectl(helm_env), "-n", NAMESPACE, "exec", "deploy/frontend", "--", "node", "-e", script
    ).stdout
    assert out.split() == ["200", "200"]


def _second_environment(tmp_path: pathlib.Path, namespace: str, node_port: int) -> pathlib.Path:
    other = environments.Environment(namespace, node_port, ENVIRONMENT.status_port + 500)
    environments.delete(other)
    return environments.clone(other, tmp_path / namespace)


def test_a_node_port_another_environment_serves_is_refused_before_anything_is_installed(
    workspace: pathlib.Path, cluster: kube.Kube, tmp_path: pathlib.Path
) -> None:
    clone = _second_environment(tmp_path, f"{NAMESPACE}-same-port", ENVIRONMENT.node_port)
    done = environments.reconcile(clone, "once", "--mode", "commit", check=False)
    said = done.stdout + done.stderr
    assert done.returncode == 1, said
    assert (
        f"NodePort {ENVIRONMENT.node_port} is already served by Service frontend in namespace "
        f"{NAMESPACE}" in said
    ), said
    assert cluster.get("v1", "Namespace", None, f"{NAMESPACE}-same-port") is None


def test_a_namespace_another_tool_manages_is_refused_and_left_alone(
    workspace: pathlib.Path, cluster: kube.Kube, tmp_path: pathlib.Path
) -> None:
    theirs = f"{NAMESPACE}-theirs"
    clone = _second_environment(tmp_path, theirs, ENVIRONMENT.node_port + 1000)
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": theirs, "labels": {"app.kubernetes.io/managed-by": "argocd"}},
        }
    )
    try:
        done = environments.reconcile(clone, "once", "--mode", "commit", check=False)
        said = done.stdout + done.stderr
        assert done.returncode == 1, said
        assert f"namespace {theirs} is managed by argocd" in said, said
        assert cluster.list("v1", "Secret", theirs) == []
        labels = cluster.get("v1", "Namespace", None, theirs)["metadata"]["labels"]
        assert "pod-security.kubernetes.io/enforce" not in labels
    finally:
        cluster.delete("v1", "Namespace", "", theirs)
