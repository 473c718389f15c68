"""The chart's NetworkPolicies are enforced: only the frontend and the chatbot reach the backend.

The local cluster runs kube-router's NetworkPolicy controller (``plugins/local_cluster``),
so the policies are iptables rules on the node, not just objects in the API. Probe pods
(the deployed backend image, under the restricted Pod Security profile) try TCP connects
with a 3 s timeout, by Service name and by pod IP:

- a pod in a namespace of its own is refused by the backend, while it still reaches the
  frontend (whose policy admits everyone on its port), so the refusal is the policy's;
- a pod inside the module's namespace without the frontend or chatbot labels is refused too, after
  its DNS lookup of the backend succeeded (so it is not cut off from everything);
- the frontend and the chatbot, exec'd into, do reach the backend, and a signed-in user
  lists todos through the NodePort on 127.0.0.1 (frontend to backend, end to end).
"""

from __future__ import annotations

import collections.abc
import json
import uuid

import environments
import lumina_stack
import pytest

NAMESPACE = environments.for_module(__file__).namespace
BACKEND_PORT = 8000
FRONTEND_PORT = 3000
CHATBOT_PORT = 8001
# What a policy's REJECT (or a DROP, were one used) looks like to the caller.
REFUSED = ("ConnectionRefusedError", "TimeoutError")

# argv: host:port ... -> one JSON object: target -> "connected" or "<error type>: <detail>".
PROBE = """
import json, socket, sys

found = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=3):
            found[target] = "connected"
    except OSError as error:
        found[target] = f"{type(error).__name__}: {error}"
print(json.dumps(found))
"""


def _backend_image() -> str:
    found = lumina_stack.kubectl(
        "get", "deployment", "backend", "-n", NAMESPACE, "-o", "json"
    ).stdout
    return str(json.loads(found)["spec"]["template"]["spec"]["containers"][0]["image"])


def _probe_pod(name: str, namespace: str, image: str, labels: dict[str, str]) -> dict[str, object]:
    """A pod that idles so probes can be exec'd in it; restricted, no token, no writes."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python", "-c", "import time; time.sleep(900)"],
                    "env": [{"name": "PYTHONDONTWRITEBYTECODE", "value": "1"}],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "32Mi"},
                        "limits": {"cpu": "200m", "memory": "128Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _probe(pod: str, namespace: str, *targets: str) -> dict[str, str]:
    result = lumina_stack.kubectl(
        "exec", "-n", namespace, pod, "--", "python", "-c", PROBE, *targets, timeout=60
    )
    return dict(json.loads(result.stdout))


def _pod_ip(selector: str) -> str:
    found = lumina_stack.kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "json"
    ).stdout
    running = [p for p in json.loads(found)["items"] if p["status"].get("phase") == "Running"]
    assert running, f"no running pod matches {selector}"
    return str(running[0]["status"]["podIP"])


@pytest.fixture(scope="module")
def probes(environment: object) -> collections.abc.Iterator[tuple[str, str]]:
    """(outsider namespace, pod name in the module's namespace): two running probe pods,
    removed after."""
    tag = uuid.uuid4().hex[:8]
    outsider_namespace = f"netpol-outsider-{tag}"
    insider = f"netpol-probe-{tag}"
    image = _backend_image()
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": outsider_namespace,
            "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
        },
    }
    labels = {"app.kubernetes.io/name": "netpol-probe"}
    manifests = [
        namespace,
        _probe_pod("outsider", outsider_namespace, image, labels),
        _probe_pod(insider, NAMESPACE, image, labels),
    ]
    try:
        for manifest in manifests:
            lumina_stack.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
        for pod, where in (("outsider", outsider_namespace), (insider, NAMESPACE)):
            lumina_stack.kubectl(
                "wait", "--for=condition=Ready", f"pod/{pod}", "-n", where, "--timeout=120s"
            )
        yield outsider_namespace, insider
    finally:
        lumina_stack.kubectl(
            "delete",
            "pod",
            insider,
            "-n",
            NAMESPACE,
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )
        lumina_stack.kubectl(
            "delete",
            "namespace",
            outsider_namespace,
            "--ignore-not-found",
            "--wait=false",
            check=False,
        )


def _assert_refused(found: dict[str, str], targets: list[str]) -> None:
    for target in targets:
        lumina_stack.count("attacks tried")
        assert found[target].startswith(REFUSED), f"{target}: {found[target]}"
        lumina_stack.count("attacks denied")


def test_a_pod_in_another_namespace_is_refused_by_the_backend(
    probes: tuple[str, str],
) -> None:
    outsider_namespace, _ = probes
    backend = [
        f"backend.{NAMESPACE}.svc.cluster.local:{BACKEND_PORT}",
        f"{_pod_ip('app.kubernetes.io/name=backend')}:{BACKEND_PORT}",
    ]
    frontend = f"frontend.{NAMESPACE}.svc.cluster.local:{FRONTEND_PORT}"
    found = _probe("outsider", outsider_namespace, *backend, frontend)
    # The same pod reaches the frontend, which admits everyone: its network works.
    assert found[frontend] == "connected", found
    _assert_refused(found, backend)


def test_a_pod_in_the_namespace_without_a_callers_labels_is_refused(
    probes: tuple[str, str],
) -> None:
    _, insider = probes
    backend = [
        f"backend:{BACKEND_PORT}",
        f"{_pod_ip('app.kubernetes.io/name=backend')}:{BACKEND_PORT}",
    ]
    chatbot = [f"chatbot:{CHATBOT_PORT}"]
    found = _probe(insider, NAMESPACE, *backend, *chatbot)
    # A refusal, not "Name or service not known": DNS, which every pod may use, answered.
    _assert_refused(found, backend + chatbot)


def test_the_frontend_and_the_chatbot_reach_the_backend() -> None:
    script = (
        "fetch('http://backend:8000/api/health')"
        ".then(r => { console.log(r.status); process.exit(r.ok ? 0 : 1); })"
        ".catch(e => { console.error(String(e)); process.exit(1); })"
    )

    def frontend_reaches() -> bool:
        result = lumina_stack.kubectl(
            "exec",
            "-n",
            NAMESPACE,
            "deploy/frontend",
            "--",
            "node",
            "-e",
            script,
            check=False,
            timeout=60,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip() == "200"

    # Retried: a pod that was just replaced is let in once the controller saw it.
    lumina_stack.wait_for(frontend_reaches, 30, "the frontend to reach backend:8000")
    target = f"backend:{BACKEND_PORT}"

    def chatbot_reaches() -> bool:
        return _probe("deploy/chatbot", NAMESPACE, target)[target] == "connected"

    lumina_stack.wait_for(chatbot_reaches, 30, "the chatbot to reach backend:8000")
    # End to end through the NodePort on 127.0.0.1: signing in and listing todos is
    # the frontend calling the backend.
    client = lumina_stack.signed_in(f"netpol-{uuid.uuid4().hex[:8]}@example.com")
    try:
        listed = client.get("/api/todos")
    finally:
        client.close()
    assert listed.status_code == 200, listed.text
