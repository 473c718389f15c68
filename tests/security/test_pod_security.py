"""The ``lumina`` namespace enforces the restricted Pod Security profile, and lives by it.

Checked on the real cluster: the namespace's labels, every running pod's security
context, and the API server refusing a privileged pod in that namespace (a server-side
dry run, so nothing is created even if the admission check were missing).
"""

from __future__ import annotations

import json
from typing import Any

import environments
import lumina_stack

ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace


def _pods() -> list[dict[str, Any]]:
    found = lumina_stack.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json").stdout
    return list(json.loads(found)["items"])


def test_namespace_enforces_restricted() -> None:
    found = lumina_stack.kubectl("get", "namespace", NAMESPACE, "-o", "json").stdout
    labels = json.loads(found)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", labels


def test_every_pod_runs_under_the_restricted_profile() -> None:
    pods = _pods()
    services = {pod["metadata"]["labels"].get("app.kubernetes.io/name") for pod in pods}
    assert {"frontend", "backend", "chatbot"} <= services, services
    problems: list[str] = []
    for pod in pods:
        name = pod["metadata"]["name"]
        spec = pod["spec"]
        pod_context = spec.get("securityContext") or {}
        if spec.get("hostNetwork") or spec.get("hostPID") or spec.get("hostIPC"):
            problems.append(f"{name}: uses a host namespace")
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            where = f"{name}/{container['name']}"
            context = container.get("securityContext") or {}

            def setting(
                key: str, context: dict[str, Any] = context, pod: dict[str, Any] = pod_context
            ) -> Any:
                return context.get(key, pod.get(key))

            if setting("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if setting("runAsUser") == 0:
                problems.append(f"{where}: runs as UID 0")
            if (setting("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{where}: no RuntimeDefault seccomp profile")
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if context.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: does not drop ALL capabilities")
    assert not problems, "\n".join(problems)


def test_a_privileged_pod_is_refused_by_the_api_server() -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "security-test-privileged", "namespace": NAMESPACE},
        "spec": {
            "containers": [
                {
                    "name": "root",
                    "image": "lumina/backend:does-not-matter",
                    "securityContext": {"privileged": True, "runAsUser": 0},
                }
            ]
        },
    }
    result = lumina_stack.kubectl(
        "apply", "--dry-run=server", "-f", "-", check=False, stdin=json.dumps(pod)
    )
    lumina_stack.count("attacks tried")
    assert result.returncode != 0, result.stdout
    assert 'violates PodSecurity "restricted' in result.stderr, result.stderr
    assert "privileged" in result.stderr
    lumina_stack.count("attacks denied")
