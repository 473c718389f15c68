"""The verification table's judgements, on objects shaped as the API serves them.

The rows that read the cluster are pure over the objects read (``kubectl get -o json``
shape), so they are checked here on such objects; the app row fetches from a real HTTP
server on loopback. The in-pod health rows need a real pod: ``tests/e2e/test_6_verify.py``
runs the whole command on the bootstrapped cluster. ``lumina-reconcile verify`` itself
runs here against a kube context whose API server does not answer.
"""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from plugins import backend, chatbot, frontend
from reconciler.cluster import verifying

PLUGINS = (frontend.plugin, backend.plugin, chatbot.plugin)


def _pod(service: str, phase: str, *ready: bool, **metadata: object) -> dict[str, object]:
    return {
        "metadata": {
            "name": f"{service}-abc",
            "labels": {"app.kubernetes.io/name": service},
            **metadata,
        },
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": service, "ready": flag} for flag in ready],
        },
    }


def test_pods_running_needs_every_service_running_and_ready() -> None:
    pods = [_pod("frontend", "Running", True), _pod("backend", "Running", True)]
    check = verifying.pods_running(pods, "lumina", ["frontend", "backend", "chatbot"])
    assert not check.passed and check.detail == "chatbot: no pod"
    pods.append(_pod("chatbot", "Running", False))
    check = verifying.pods_running(pods, "lumina", ["frontend", "backend", "chatbot"])
    assert not check.passed and "chatbot-abc Running, 0/1 ready" in check.detail
    pods[-1] = _pod("chatbot", "Running", True)
    check = verifying.pods_running(pods, "lumina", ["frontend", "backend", "chatbot"])
    assert check.passed and check.by_hand == "kubectl get pods -n lumina"


def test_pods_leaving_and_helm_hook_pods_do_not_count() -> None:
    pods = [
        _pod("backend", "Running", True),
        _pod("backend", "Failed", False, deletionTimestamp="2026-12-01T00:00:00Z"),
        _pod("backend", "Pending", False, annotations={"helm.sh/hook": "test"}),
    ]
    assert verifying.pods_running(pods, "lumina", ["backend"]).passed
    assert not verifying.pods_running([_pod("backend", "Pending")], "lumina", ["backend"]).passed


def test_services_present_names_the_missing_one() -> None:
    frontend_service = {
        "spec": {"type": "NodePort", "ports": [{"port": 3000, "nodePort": 30080}]},
    }
    check = verifying.services_present({"frontend": frontend_service, "backend": None}, "lumina")
    assert not check.passed and check.detail == "missing: backend"
    check = verifying.services_present({"frontend": frontend_service}, "lumina")
    assert check.passed and check.detail == "frontend NodePort 3000->30080"
    assert check.by_hand == "kubectl get svc -n lumina"


def test_claims_must_exist_and_be_bound() -> None:
    def claim(phase: str) -> dict[str, object]:
        return {"metadata": {"name": "backend-data"}, "status": {"phase": phase}}

    assert verifying.claims_bound([claim("Bound")], "lumina").passed
    pending = verifying.claims_bound([claim("Pending")], "lumina")
    assert not pending.passed and pending.detail == "backend-data Pending"
    assert not verifying.claims_bound([], "lumina").passed


def test_secrets_need_every_required_key_and_show_no_value() -> None:
    wanted = verifying.declared_secrets(PLUGINS)
    # SMTP_PASSWORD and OPENAI_API_KEY are optional: only the JWT key is required.
    assert wanted == {"backend-secrets": {"JWT_SECRET_KEY"}, "chatbot-secrets": set()}
    found: dict[str, dict[str, object] | None] = {
        "backend-secrets": {"data": {"SMTP_PASSWORD": "c2VjcmV0"}},
        "chatbot-secrets": None,
    }
    check = verifying.secrets_present(found, wanted, "lumina")
    assert not check.passed
    assert check.detail == "backend-secrets lacks JWT_SECRET_KEY; chatbot-secrets missing"
    assert "c2VjcmV0" not in json.dumps(check.to_json())
    found = {"backend-secrets": {"data": {"JWT_SECRET_KEY": "eA=="}}, "chatbot-secrets": {}}
    assert verifying.secrets_present(found, wanted, "lumina").passed


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_app_row_fetches_the_health_endpoint_through_the_url(server: str) -> None:
    check = verifying.app_answers(server, "")
    assert check.passed and check.detail == f"{server}/api/health: HTTP 200"
    assert check.by_hand == f"curl -fsS {server}/api/health"
    assert verifying.fetch_status(f"{server}/other") == 503


def test_app_row_fails_when_nothing_listens_or_no_url_is_known(server: str) -> None:
    refused = verifying.app_answers("http://127.0.0.1:1", "")
    assert not refused.passed and "http://127.0.0.1:1/api/health" in refused.detail
    unknown = verifying.app_answers("", "use kubectl -n lumina port-forward svc/frontend")
    assert not unknown.passed and "port-forward" in unknown.detail


@pytest.mark.parametrize("interpreter", ["python", "node"])
def test_in_pod_commands_need_no_curl(server: str, interpreter: str) -> None:
    """The in-pod scripts, run here by the same interpreters the images have."""
    arguments = dict(verifying.INTERPRETERS)[interpreter]
    program = sys.executable if interpreter == "python" else interpreter
    done = subprocess.run(
        [program, *arguments(f"{server}/api/health")], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "200"), done.stderr
    # A failed request exits 1, which verify reads as "the interpreter exists, the request
    # failed" -- not as "try another interpreter".
    failed = subprocess.run(
        [program, *arguments("http://127.0.0.1:1/api/health")], capture_output=True, check=False
    )
    assert failed.returncode == 1


def test_verify_fails_with_one_row_when_the_cluster_does_not_answer(
    project: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        """
apiVersion: v1
kind: Config
clusters: [{name: nowhere, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: someone, user: {token: not-a-real-token}}]
contexts: [{name: nowhere, context: {cluster: nowhere, user: someone}}]
current-context: nowhere
"""
    )
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "LUMINA_CLUSTER": "context",
        "LUMINA_KUBE_CONTEXT": "nowhere",
    }
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "verify", "--json", "--repo", str(project)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["passed"] is False
    (row,) = document["checks"]
    assert row["name"] == "cluster running" and not row["passed"]
    assert "the context cluster is not up: api-server unreachable" in row["detail"]
