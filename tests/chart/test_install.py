"""The chart on a real cluster: installs, becomes Ready, passes `helm test`, keeps data.

Runs against the cluster in KUBECONFIG, or else the local provider's
(~/.cache/lumina/cluster/admin.kubeconfig), in a throwaway namespace with the
restricted Pod Security profile enforced, as a second release beside whatever
the reconciler runs. There is no registry, so it reuses images the cluster
already has: those of this checkout's HEAD (the tags `lumina-reconcile plan --mode
commit` names, which the e2e session's first-contact bootstrap builds and delivers),
or lumina/<service>:$LUMINA_CHART_TEST_TAG.
No cluster, kubectl or images is a failure naming what is missing.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import HelmRun

SERVICES = ("frontend", "backend", "chatbot")
RELEASE = "chart-install-test"


class Kubectl:
    def __init__(self, binary: str, kubeconfig: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    @property
    def helm_args(self) -> tuple[str, ...]:
        """The same cluster for helm."""
        return ("--kubeconfig", str(self.kubeconfig))

    def json(self, *args: str) -> Any:
        result = self(*args, "-o", "json")
        assert result.returncode == 0, f"kubectl {' '.join(args)}: {result.stderr}"
        return json.loads(result.stdout)


@pytest.fixture(scope="module")
def kubectl() -> Kubectl:
    cache = Path(os.environ.get("LUMINA_CACHE", Path.home() / ".cache" / "lumina"))
    kubeconfig = Path(os.environ.get("KUBECONFIG", cache / "cluster" / "admin.kubeconfig"))
    if not kubeconfig.is_file():
        pytest.fail(
            f"needs a running Kubernetes cluster: no kubeconfig at {kubeconfig} "
            "(set KUBECONFIG, or start one with `nox -s cluster -- up`)"
        )
    built = sorted(cache.glob("k8s/v*/bin/kubectl"))
    binary = shutil.which("kubectl") or (str(built[-1]) if built else None)
    if binary is None:
        pytest.fail("needs kubectl: not on PATH and not built under ~/.cache/lumina/k8s")
    client = Kubectl(binary, kubeconfig)
    reachable = client("get", "--raw", "/readyz")
    if reachable.returncode != 0:
        pytest.fail(
            f"needs a running Kubernetes cluster: {kubeconfig} does not answer: {reachable.stderr}"
        )
    return client


@pytest.fixture(scope="module")
def images(kubectl: Kubectl) -> dict[str, tuple[str, str]]:
    """(repository, tag) per service, of images the cluster already holds."""
    tag = os.environ.get("LUMINA_CHART_TEST_TAG")
    if tag:
        return {service: (f"lumina/{service}", tag) for service in SERVICES}
    root = Path(__file__).resolve().parents[2]
    plan = subprocess.run(
        [
            sys.executable,
            "-m",
            "reconciler",
            "plan",
            "--json",
            "--mode",
            "commit",
            "--repo",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    found: dict[str, tuple[str, str]] = {}
    if plan.returncode == 0:
        for service in json.loads(plan.stdout)["services"]:
            if service["name"] in SERVICES:
                found[service["name"]] = (f"lumina/{service['name']}", service["tag"])
    missing = [service for service in SERVICES if service not in found]
    if missing:
        pytest.fail(
            f"needs the service images of this checkout's HEAD, and `lumina-reconcile plan` "
            f"named none for {missing} ({plan.stderr.strip()[-300:]}): run `nox -s bootstrap` "
            "first, or load lumina/<service>:<tag> images and set LUMINA_CHART_TEST_TAG"
        )
    return found


@pytest.fixture(scope="module")
def namespace(kubectl: Kubectl) -> Iterator[str]:
    name = f"chart-test-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}},
    }
    created = kubectl("create", "-f", "-", stdin=json.dumps(manifest))
    assert created.returncode == 0, created.stderr
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def install_args(
    chart: Path, namespace: str, images: dict[str, tuple[str, str]], node_port: int
) -> list[str]:
    args = [
        "upgrade", "--install", RELEASE, str(chart), "--namespace", namespace,
        "--wait", "--timeout", "6m",
        "--set", f"frontend.service.nodePort={node_port}",
        "--set", "backend.secrets.create=true",
        "--set-string", f"backend.secrets.jwtSecretKey={secrets.token_hex(32)}",
    ]  # fmt: skip
    for service, (repository, tag) in images.items():
        args += [
            "--set", f"{service}.image.repository={repository}",
            "--set-string", f"{service}.image.tag={tag}",
            "--set", f"{service}.image.pullPolicy=Never",
            # A second copy of the stack beside the real one must still fit the node.
            "--set", f"{service}.resources.requests.cpu=50m",
            "--set", f"{service}.resources.requests.memory=128Mi",
        ]  # fmt: skip
    return args


def backend_call(kubectl: Kubectl, namespace: str, path: str, body: dict[str, str]) -> int:
    """POST JSON to the backend from inside its own pod; returns the HTTP status."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        f"request = urllib.request.Request('http://127.0.0.1:8000{path}', "
        f"data=json.dumps({body!r}).encode(), headers={{'Content-Type': 'application/json'}})\n"
        "try:\n    print(urllib.request.urlopen(request, timeout=10).status)\n"
        "except urllib.error.HTTPError as error:\n    print(error.code)\n"
    )
    result = kubectl("exec", "-n", namespace, "deploy/backend", "--", "python", "-c", script)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.strip())


def test_install_test_uninstall_reinstall(
    helm: HelmRun, chart: Path, kubectl: Kubectl, images: dict[str, tuple[str, str]], namespace: str
) -> None:
    node_port = random.randint(31000, 31999)
    started = time.monotonic()
    installed = helm(*install_args(chart, namespace, images, node_port), *kubectl.helm_args)
    assert installed.returncode == 0, (
        f"helm install failed:\n{installed.stderr}\n{describe(kubectl, namespace)}"
    )
    install_seconds = time.monotonic() - started

    # The seed's success table: pods running, services, bound PVC, secrets.
    pods = kubectl.json("get", "pods", "-n", namespace)["items"]
    ready = {
        p["metadata"]["labels"]["app.kubernetes.io/name"]: all(
            c["ready"] for c in p["status"]["containerStatuses"]
        )
        for p in pods
    }
    assert ready == dict.fromkeys(SERVICES, True), describe(kubectl, namespace)
    services = {
        s["metadata"]["name"]: s["spec"]
        for s in kubectl.json("get", "svc", "-n", namespace)["items"]
    }
    assert services["frontend"]["type"] == "NodePort"
    assert services["frontend"]["ports"][0]["nodePort"] == node_port
    assert (services["backend"]["type"], services["backend"]["ports"][0]["port"]) == (
        "ClusterIP",
        8000,
    )
    assert (services["chatbot"]["type"], services["chatbot"]["ports"][0]["port"]) == (
        "ClusterIP",
        8001,
    )
    pvc = kubectl.json("get", "pvc", "backend-data", "-n", namespace)
    assert pvc["status"]["phase"] == "Bound"
    assert kubectl("get", "secret", "backend-secrets", "-n", namespace).returncode == 0

    # helm test: each health endpoint through its Service DNS name.
    tested = helm("test", RELEASE, "-n", namespace, "--logs", "--timeout", "3m", *kubectl.helm_args)
    assert tested.returncode == 0, f"helm test failed:\n{tested.stdout}\n{tested.stderr}"
    for service in SERVICES:
        assert f"{service}-test-health" in tested.stdout and "Succeeded" in tested.stdout

    # The frontend answers from outside the cluster on its NodePort.
    node = kubectl.json("get", "nodes")["items"][0]
    node_ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    with urllib.request.urlopen(f"http://{node_ip}:{node_port}/api/health", timeout=10) as response:
        assert response.status == 200

    # Data written before `helm uninstall` is there after a reinstall.
    user = {
        "email": f"keep-{uuid.uuid4().hex[:6]}@example.com",
        "password": "a-long-test-password",
    }
    assert backend_call(kubectl, namespace, "/api/auth/register", user) == 201
    uninstalled = helm("uninstall", RELEASE, "-n", namespace, "--wait", *kubectl.helm_args)
    assert uninstalled.returncode == 0, uninstalled.stderr
    assert "backend-data" in uninstalled.stdout + uninstalled.stderr  # helm reports what it kept
    assert kubectl.json("get", "pvc", "backend-data", "-n", namespace)["status"]["phase"] == "Bound"
    assert kubectl("get", "deployment", "backend", "-n", namespace).returncode != 0
    reinstalled = helm(*install_args(chart, namespace, images, node_port), *kubectl.helm_args)
    assert reinstalled.returncode == 0, (
        f"reinstall failed:\n{reinstalled.stderr}\n{describe(kubectl, namespace)}"
    )
    assert backend_call(kubectl, namespace, "/api/auth/login", user) == 200
    print(f"install with --wait took {install_seconds:.0f}s")


def describe(kubectl: Kubectl, namespace: str) -> str:
    """What a user would look at when an install fails."""
    pods = kubectl("get", "pods,pvc,events", "-n", namespace, "-o", "wide")
    return pods.stdout[-4000:] + pods.stderr[-1000:]
