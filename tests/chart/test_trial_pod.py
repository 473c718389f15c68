"""The backend's trial pod and revert pod, built from the Deployment Helm renders.

The pods are what :mod:`reconciler.cluster.trial_pods` makes of the real chart's
output; the properties asserted are the ones that keep a trial harmless: the restricted
profile holds for every container, no Service routes to it, the live volume is only
read, the app runs on the copy with the new config, and Kubernetes ends it on its own.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

from plugins import backend
from reconciler.cluster import trial_pods

if TYPE_CHECKING:
    from conftest import Manifests

BACKUP = "/data/backups/lumina-20261201T120000.000Z-rev3-before-abc.db"


def _trial(defaults: Manifests) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    deployment = defaults.get("Deployment", "backend")
    spec = deployment["spec"]["template"]["spec"]
    copies = trial_pods.trial_config_maps(defaults, spec, "backend")
    pod = trial_pods.trial_pod(
        deployment,
        backend.TRIAL,
        service="backend",
        backup=BACKUP,
        node="node-a",
        config_maps={old: new["metadata"]["name"] for old, new in copies.items()},
    )
    return pod, copies


def _restricted(spec: dict[str, Any]) -> None:
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert context["runAsNonRoot"] is True, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]


def test_the_trial_is_restricted_unrouted_and_never_writes_the_live_volume(
    defaults: Manifests,
) -> None:
    pod, _ = _trial(defaults)
    spec = pod["spec"]
    _restricted(spec)
    # No Service selects it: its labels share nothing with any Service's selector.
    for service in defaults.of_kind("Service"):
        selector = service["spec"].get("selector") or {}
        assert not selector or not selector.items() <= pod["metadata"]["labels"].items()
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        data = [m for m in container["volumeMounts"] if m["name"] == "data"]
        assert data and all(m["readOnly"] for m in data), container["name"]
    [claim] = [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert claim["persistentVolumeClaim"]["readOnly"] is True
    assert spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] > backend.TRIAL.timeout_seconds
    assert spec["nodeSelector"]["kubernetes.io/hostname"] == "node-a"


def test_the_app_runs_on_the_copy_with_the_new_config(defaults: Manifests) -> None:
    pod, copies = _trial(defaults)
    # The backend copies the backup in its own start: no init container to wait for.
    assert "initContainers" not in pod["spec"]
    [app] = pod["spec"]["containers"]
    env = {v["name"]: v.get("value") for v in app["env"]}
    assert env["DATABASE_URL"] == "sqlite:////trial/lumina.db"
    assert env["LUMINA_TRIAL_BACKUP"] == BACKUP
    assert {"name": trial_pods.SCRATCH_VOLUME, "mountPath": "/trial"} in app["volumeMounts"]
    assert app["readinessProbe"]["httpGet"]["path"] == "/api/ready"
    assert app["readinessProbe"]["periodSeconds"] == 1  # the upgrade waits on its answer
    # Nothing before readiness (a startup probe's period), nothing killing a slow start.
    assert "startupProbe" not in app and "livenessProbe" not in app
    # The rendered (new) config, under a trial name: the release's own is still the old.
    [(old, copy)] = copies.items()
    rendered = defaults.get("ConfigMap", old)
    assert copy["data"] == rendered["data"] and copy["metadata"]["name"] != old
    refs = {s["configMapRef"]["name"] for s in app["envFrom"] if "configMapRef" in s}
    assert refs == {copy["metadata"]["name"]}


def test_a_prepare_step_runs_first_in_an_init_container(defaults: Manifests) -> None:
    """A plugin whose app cannot copy its data itself names a prepare command: it runs
    in the new image before the app, with the backup named to it, not to the app."""
    deployment = defaults.get("Deployment", "backend")
    trial = dataclasses.replace(backend.TRIAL, prepare=("copy-data", "--to", "/trial/x.db"))
    pod = trial_pods.trial_pod(
        deployment, trial, service="backend", backup=BACKUP, node=None, config_maps={}
    )
    _restricted(pod["spec"])
    [prepare] = pod["spec"]["initContainers"]
    [app] = pod["spec"]["containers"]
    assert prepare["command"] == ["copy-data", "--to", "/trial/x.db"]
    assert prepare["image"] == app["image"]
    assert {v["name"]: v.get("value") for v in prepare["env"]}["LUMINA_TRIAL_BACKUP"] == BACKUP
    assert "LUMINA_TRIAL_BACKUP" not in {v["name"] for v in app["env"]}
    assert "readinessProbe" not in prepare and "nodeSelector" not in pod["spec"]


def test_the_trial_starts_on_a_whole_core_with_the_pods_memory(defaults: Manifests) -> None:
    """A start at the pod's half core takes twice as long and the upgrade waits for it;
    what the trial must show (an out-of-memory start) keeps the pod's own memory limit,
    and scheduling reserves what the pod would."""
    pod, _ = _trial(defaults)
    deployment = defaults.get("Deployment", "backend")
    [live] = deployment["spec"]["template"]["spec"]["containers"]
    assert live["resources"]["limits"]["cpu"] == "500m"
    for container in pod["spec"]["containers"]:
        resources = container["resources"]
        assert resources["limits"]["cpu"] == "1000m", container["name"]
        assert resources["limits"]["memory"] == live["resources"]["limits"]["memory"]
        assert resources["requests"] == live["resources"]["requests"], container["name"]


def test_the_revert_pod_runs_the_previous_image_once_on_the_volume(defaults: Manifests) -> None:
    deployment = defaults.get("Deployment", "backend")
    pod = trial_pods.revert_pod(
        deployment,
        service="backend",
        image="lumina/backend:previous",
        command=["python", "-m", "app.backup", "--json", "revert", BACKUP],
    )
    spec = pod["spec"]
    _restricted(spec)
    [app] = spec["containers"]
    assert app["image"] == "lumina/backend:previous" and "readinessProbe" not in app
    assert spec["restartPolicy"] == "Never"
    assert "app.kubernetes.io/name" not in pod["metadata"]["labels"]


NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def _pod(**status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "backend-trial"}, "spec": {}, "status": status}


def _ended(code: int) -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "reason": "Error" if code else "Completed"}}


CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("starting", _pod(phase="Pending"), None),
    ("ready", _pod(phase="Running", conditions=[{"type": "Ready", "status": "True"}]), "passed"),
    (
        "no room",
        _pod(
            phase="Pending",
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes: Insufficient cpu",
                }
            ],
        ),
        "skipped",
    ),
    (
        "prepared, app running",
        _pod(
            phase="Running",
            initContainerStatuses=[{"name": "prepare-trial", "state": _ended(0)}],
            containerStatuses=[{"name": "backend", "state": {"running": {}}}],
        ),
        None,
    ),
    (
        "prepare failed",
        _pod(phase="Failed", initContainerStatuses=[{"name": "prepare-trial", "state": _ended(1)}]),
        "failed",
    ),
    (
        "app exited",
        _pod(phase="Failed", containerStatuses=[{"name": "backend", "state": _ended(3)}]),
        "failed",
    ),
    (
        "config error",
        _pod(
            phase="Pending",
            containerStatuses=[
                {
                    "name": "backend",
                    "image": "lumina/backend:new",
                    "state": {
                        "waiting": {
                            "reason": "CreateContainerConfigError",
                            "message": 'secret "backend-secrets" not found',
                        }
                    },
                }
            ],
        ),
        "failed",
    ),
    ("deadline", _pod(phase="Failed", reason="DeadlineExceeded"), "failed"),
]


def test_the_verdict_comes_from_the_pod_alone() -> None:
    for name, pod, expected in CASES:
        found = trial_pods.judge("backend", pod, [], NOW)
        assert (found.verdict.value if found else None) == expected, name
        if expected == "failed":
            assert found is not None and found.diagnosis is not None, name
