"""Each rule of the chart, asserted on the manifests Helm renders.

These are the properties that keep the app safe to deploy: the restricted
Pod Security profile, probes on the contract's health paths, the resource
budget, one backend pod on its kept PVC, selectors that never change, and
configuration that is in ConfigMaps while secrets stay in Secrets.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:
    from conftest import HelmRun, Manifests, Render

SERVICES = {
    # name: (container port, liveness path, readiness path)
    "frontend": (3000, "/api/health", "/api/health"),
    "backend": (8000, "/api/health", "/api/ready"),
    # /ready answers 503 without an (optional) model key; see chatbot values.
    "chatbot": (8001, "/health", "/health"),
}
SECRET_WORDS = re.compile(
    r"secret|password|passwd|token|api_?key|apikey|private|credential", re.IGNORECASE
)


def test_pods_follow_the_restricted_pod_security_profile(defaults: Manifests) -> None:
    specs = dict(defaults.pod_specs())
    assert len(specs) == 6, specs.keys()  # three Deployments, three helm test pods
    for where, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, where
        assert pod["runAsUser"] == 10001 and pod["runAsGroup"] == 10001, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        assert "hostNetwork" not in spec and "hostPID" not in spec, where
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            # With a read-only root, the app's only writable scratch is /tmp.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], where


def test_writable_paths_are_exactly_the_ones_each_service_needs(defaults: Manifests) -> None:
    mounts = {
        service: {m["mountPath"] for m in defaults.container(service)["volumeMounts"]}
        for service in SERVICES
    }
    assert mounts == {
        "frontend": {"/tmp", "/app/.next/cache"},
        "backend": {"/tmp", "/data"},
        "chatbot": {"/tmp"},
    }


@pytest.mark.parametrize("service", SERVICES)
def test_probes_hit_the_contract_health_paths(defaults: Manifests, service: str) -> None:
    port, live, ready = SERVICES[service]
    container = defaults.container(service)
    named_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert named_ports == {"http": port}
    for probe, path in (("livenessProbe", live), ("readinessProbe", ready), ("startupProbe", live)):
        http = container[probe]["httpGet"]
        assert http["path"] == path, probe
        assert named_ports[http["port"]] == port, probe


@pytest.mark.parametrize("service", SERVICES)
def test_resources_match_the_budget(defaults: Manifests, service: str) -> None:
    assert defaults.container(service)["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"cpu": "500m", "memory": "512Mi"},
    }


def test_backend_is_one_pod_recreated_on_a_kept_volume(defaults: Manifests) -> None:
    deployment = defaults.get("Deployment", "backend")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= 30
    # The fresh volume is root-owned; fsGroup lets UID 10001 write the DB.
    assert pod["securityContext"]["fsGroup"] == 10001
    volumes = {v["name"]: v for v in pod["volumes"]}
    data_mount = next(
        m for m in defaults.container("backend")["volumeMounts"] if m["mountPath"] == "/data"
    )
    assert volumes[data_mount["name"]]["persistentVolumeClaim"] == {"claimName": "backend-data"}
    pvc = defaults.get("PersistentVolumeClaim", "backend-data")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"]  # the cluster's default class


def test_backend_refuses_a_second_replica_even_without_the_schema(
    helm: HelmRun, chart: Path
) -> None:
    result = helm(
        "template",
        "lumina",
        chart,
        "-n",
        "lumina",
        "--skip-schema-validation",
        "--set",
        "backend.replicaCount=2",
    )
    assert result.returncode != 0
    assert "backend.replicaCount must be 1" in result.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_selectors_use_only_stable_labels(defaults: Manifests, service: str) -> None:
    stable = {"app.kubernetes.io/name": service, "app.kubernetes.io/instance": "lumina"}
    deployment = defaults.get("Deployment", service)
    assert deployment["spec"]["selector"] == {"matchLabels": stable}
    assert defaults.get("Service", service)["spec"]["selector"] == stable
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert stable.items() <= pod_labels.items()
    for label in (
        "app.kubernetes.io/managed-by",
        "app.kubernetes.io/part-of",
        "app.kubernetes.io/component",
    ):
        assert label in deployment["metadata"]["labels"], label


def test_services_expose_the_contract_ports(defaults: Manifests) -> None:
    def shape(name: str) -> tuple[str, list[dict[str, Any]]]:
        spec = defaults.get("Service", name)["spec"]
        return spec["type"], spec["ports"]

    assert shape("frontend") == (
        "NodePort",
        [
            {
                "name": "http",
                "port": 3000,
                "targetPort": "http",
                "protocol": "TCP",
                "nodePort": 30080,
            }
        ],
    )
    assert shape("backend") == (
        "ClusterIP",
        [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}],
    )
    assert shape("chatbot") == (
        "ClusterIP",
        [{"name": "http", "port": 8001, "targetPort": "http", "protocol": "TCP"}],
    )


def test_the_backend_believes_x_forwarded_for_only_from_the_frontend_pods(
    defaults: Manifests,
) -> None:
    # TRUSTED_PROXIES names a headless Service: its DNS name is the frontend pods' addresses.
    pods = defaults.get("Service", "frontend-pods")["spec"]
    assert pods["clusterIP"] == "None" and pods["publishNotReadyAddresses"] is True
    assert pods["selector"] == defaults.get("Service", "frontend")["spec"]["selector"]
    assert "nodePort" not in pods["ports"][0]
    assert defaults.get("ConfigMap", "backend")["data"]["TRUSTED_PROXIES"] == "frontend-pods"


def test_the_backend_is_told_its_memory_limit(defaults: Manifests) -> None:
    # The password-hash bound is sized from the limit (not the request), through the
    # downward API; the schema keeps the limit at the chart's 512Mi by default.
    env = {item["name"]: item for item in defaults.container("backend")["env"]}
    assert env["MEMORY_LIMIT_BYTES"]["valueFrom"] == {
        "resourceFieldRef": {"resource": "limits.memory"}
    }
    assert defaults.container("backend")["resources"]["limits"]["memory"] == "512Mi"


def test_configmaps_carry_the_contract_settings(defaults: Manifests) -> None:
    def data(name: str) -> dict[str, str]:
        configmap_data: dict[str, str] = defaults.get("ConfigMap", name)["data"]
        return configmap_data

    assert data("frontend") == {
        "BACKEND_URL": "http://backend.lumina.svc.cluster.local:8000",
        "CHATBOT_URL": "http://chatbot.lumina.svc.cluster.local:8001",
        "NEXT_TELEMETRY_DISABLED": "1",
        "TRUSTED_PROXY_HOPS": "0",
    }
    assert data("backend") == {
        "DATABASE_URL": "sqlite:////data/lumina.db",
        "JWT_EXPIRE_MINUTES": "60",
        "AUTH_ATTEMPTS_PER_CLIENT": "20",
        "AUTH_ATTEMPTS_PER_ACCOUNT": "5",
        "AUTH_ATTEMPTS_WINDOW_SECONDS": "60",
        "TRUSTED_PROXIES": "frontend-pods",
        "SMTP_PORT": "587",
        "SMTP_STARTTLS": "true",
    }
    # No OPENAI_BASE_URL by default: an empty one would not mean "unset".
    assert data("chatbot") == {
        "BACKEND_URL": "http://backend.lumina.svc.cluster.local:8000",
        "CHAT_MODEL": "gpt-4o-mini",
    }
    for service in SERVICES:
        env_from = defaults.container(service)["envFrom"]
        assert env_from == [{"configMapRef": {"name": service}}]


def test_overrides_reach_the_configmaps(overridden: Manifests) -> None:
    assert overridden.get("ConfigMap", "backend")["data"] == {
        "DATABASE_URL": "sqlite:////data/lumina.db",
        "JWT_EXPIRE_MINUTES": "120",
        "AUTH_ATTEMPTS_PER_CLIENT": "20",
        "AUTH_ATTEMPTS_PER_ACCOUNT": "5",
        "AUTH_ATTEMPTS_WINDOW_SECONDS": "60",
        "TRUSTED_PROXIES": "frontend-pods",
        "SMTP_HOST": "smtp.example.test",
        "SMTP_PORT": "2525",
        "SMTP_USERNAME": "lumina",
        "SMTP_FROM": "todo@example.test",
        "SMTP_STARTTLS": "false",
    }
    assert (
        overridden.get("ConfigMap", "chatbot")["data"]["OPENAI_BASE_URL"]
        == "http://10.20.0.5:11434/v1"
    )
    assert overridden.container("backend")["image"] == "lumina/backend:a1b2c3d4e5f60718"
    assert overridden.container("backend")["imagePullPolicy"] == "Never"
    assert overridden.get("Service", "frontend")["spec"]["ports"][0]["nodePort"] == 30081
    assert (
        overridden.get("PersistentVolumeClaim", "backend-data")["spec"]["storageClassName"]
        == "standard"
    )


def secret_refs(manifests: Manifests, service: str) -> dict[str, dict[str, Any]]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in manifests.container(service).get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def test_secrets_are_referenced_by_name_not_rendered(defaults: Manifests) -> None:
    assert not defaults.of_kind("Secret")
    assert secret_refs(defaults, "backend") == {
        "JWT_SECRET_KEY": {"name": "backend-secrets", "key": "JWT_SECRET_KEY"},
        "SMTP_PASSWORD": {"name": "backend-secrets", "key": "SMTP_PASSWORD", "optional": True},
    }
    # Optional: without a model key the chatbot runs and explains chat is off.
    assert secret_refs(defaults, "chatbot") == {
        "OPENAI_API_KEY": {"name": "chatbot-secrets", "key": "OPENAI_API_KEY", "optional": True},
    }
    assert secret_refs(defaults, "frontend") == {}


def test_hand_install_renders_secrets_only_into_secrets(
    overridden: Manifests, overrides: Path
) -> None:
    values = yaml.safe_load(overrides.read_text())
    secret_values = {
        values["backend"]["secrets"]["jwtSecretKey"],
        values["backend"]["secrets"]["smtpPassword"],
        values["chatbot"]["secrets"]["openaiApiKey"],
    }
    assert set(overridden.get("Secret", "backend-secrets")["data"]) == {
        "JWT_SECRET_KEY",
        "SMTP_PASSWORD",
    }
    assert set(overridden.get("Secret", "chatbot-secrets")["data"]) == {"OPENAI_API_KEY"}
    # The plain values appear nowhere but base64-encoded inside the Secrets.
    for manifest in overridden:
        if manifest["kind"] != "Secret":
            text = yaml.safe_dump(manifest)
            for value in secret_values:
                assert value not in text, (
                    f"{manifest['kind']}/{manifest['metadata']['name']} leaks a secret"
                )


def test_hand_install_without_a_jwt_key_is_refused(helm: HelmRun, chart: Path) -> None:
    result = helm(
        "template", "lumina", chart, "-n", "lumina", "--set", "backend.secrets.create=true"
    )
    assert result.returncode != 0
    assert "backend.secrets.jwtSecretKey is required" in result.stderr


@pytest.mark.parametrize("values", ["defaults", "overrides"])
def test_configmaps_hold_no_secret_looking_keys(
    render: Render, overrides: Path, values: str
) -> None:
    manifests = render() if values == "defaults" else render("--values", overrides)
    for configmap in manifests.of_kind("ConfigMap"):
        leaked = [key for key in configmap["data"] if SECRET_WORDS.search(key)]
        assert not leaked, f"ConfigMap/{configmap['metadata']['name']} holds {leaked}"


def secret_like_leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every leaf whose key looks like it holds a secret."""
    if isinstance(node, dict):
        found = []
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if isinstance(value, (dict, list)):
                found += secret_like_leaves(value, child)
            elif SECRET_WORDS.search(str(key)) and key not in {
                "existingSecret",
                "create",
                "checksum",
            }:
                found.append((child, value))
        return found
    if isinstance(node, list):
        return [
            leaf for i, item in enumerate(node) for leaf in secret_like_leaves(item, f"{path}[{i}]")
        ]
    return []


def test_committed_values_hold_no_secret(chart: Path) -> None:
    files = [chart / "values.yaml", *sorted(chart.glob("charts/*/values.yaml"))]
    leaves = [
        (f"{f.relative_to(chart)}:{p}", v)
        for f in files
        for p, v in secret_like_leaves(yaml.safe_load(f.read_text()))
    ]
    # The secret slots exist (documented for hand installs) and are all empty.
    assert {path for path, _ in leaves} >= {
        "charts/backend/values.yaml:secrets.jwtSecretKey",
        "charts/backend/values.yaml:secrets.smtpPassword",
        "charts/chatbot/values.yaml:secrets.openaiApiKey",
    }
    assert [(path, value) for path, value in leaves if value not in ("", None)] == []


def pod_annotations(manifests: Manifests, service: str) -> dict[str, str]:
    metadata = manifests.get("Deployment", service)["spec"]["template"]["metadata"]
    annotations: dict[str, str] = metadata.get("annotations", {})
    return annotations


def test_a_config_change_rolls_only_the_pods_that_use_it(
    render: Render, defaults: Manifests
) -> None:
    changed = render("--set", "chatbot.config.chatModel=gpt-4.1-mini")
    for service in SERVICES:
        before = pod_annotations(defaults, service)["checksum/config"]
        after = pod_annotations(changed, service)["checksum/config"]
        assert (before != after) == (service == "chatbot"), service


def test_a_secret_change_rolls_the_pods(render: Render, overrides: Path) -> None:
    first = render("--values", overrides)
    rotated = render(
        "--values", overrides, "--set", "backend.secrets.jwtSecretKey=another-test-key-1234567890"
    )
    assert (
        pod_annotations(first, "backend")["checksum/secret"]
        != pod_annotations(rotated, "backend")["checksum/secret"]
    )
    # Referenced Secrets: the reconciler passes a digest of their data.
    by_digest = render("--set", "backend.secrets.checksum=5e1f0c")
    assert pod_annotations(by_digest, "backend")["checksum/secret"] == "5e1f0c"


def test_namespace_is_labelled_restricted_and_kept(overridden: Manifests) -> None:
    namespace = overridden.get("Namespace", "lumina")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    # Deleting the namespace on uninstall would take the kept PVC with it.
    assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_notes_say_how_to_reach_the_app(helm: HelmRun, chart: Path, tmp_path: Path) -> None:
    """NOTES.txt rendered by real helm, without a cluster.

    Helm 3's `install --dry-run=client` still dials the API server, so a copy
    of the chart gets one extra template that includes NOTES.txt by name.
    """
    copy = tmp_path / "lumina-todo"
    shutil.copytree(chart, copy)
    (copy / "templates" / "notes-probe.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
        '  NOTES.txt: {{ include "lumina-todo/templates/NOTES.txt" . | toJson }}\n'
    )
    result = helm(
        "template", "lumina", copy, "-n", "lumina", "--show-only", "templates/notes-probe.yaml"
    )
    assert result.returncode == 0, result.stderr
    notes = yaml.safe_load(result.stdout)["data"]["NOTES.txt"]
    assert "minikube service frontend -n lumina --url" in notes
    assert "http://<node-ip>:30080" in notes
    assert "helm test lumina -n lumina" in notes
    assert 'Secret "backend-secrets"' in notes


@pytest.mark.parametrize("service", SERVICES)
def test_helm_test_pods_call_health_through_service_dns(defaults: Manifests, service: str) -> None:
    pod = defaults.get("Pod", f"{service}-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # Deleting on success would make `helm test --logs` fail with "pod not found".
    assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == "before-hook-creation"
    (container,) = pod["spec"]["containers"]
    # No registry: the test reuses the service's own image.
    assert container["image"] == defaults.container(service)["image"]
    port, live, _ = SERVICES[service]
    url = f"http://{service}.lumina.svc.cluster.local:{port}{live}"
    assert url in " ".join(container["command"])
    assert pod["spec"]["restartPolicy"] == "Never"
    # The test pod must never be picked up by the service it tests.
    selector = defaults.get("Service", service)["spec"]["selector"]
    assert not selector.items() <= pod["metadata"]["labels"].items()
