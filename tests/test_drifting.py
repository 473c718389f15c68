"""Drift detection over a release manifest and live Deployments as the API serves them."""

from __future__ import annotations

import copy
from typing import Any

from reconciler.releasing import drifting

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "backend", "labels": {"app.kubernetes.io/name": "backend"}},
    "spec": {
        "replicas": 1,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "backend",
                        "image": "lumina/backend:abc",
                        "env": [{"name": "LOG_LEVEL", "value": "info"}],
                        "resources": {
                            "requests": {"cpu": "250m", "memory": "256Mi"},
                            "limits": {"cpu": 0.5, "memory": "512Mi"},
                        },
                    }
                ]
            }
        },
    },
}


def _live() -> dict[str, Any]:
    live = copy.deepcopy(DESIRED)
    # What the API server adds or canonicalises is not drift.
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = "500m"
    live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 1}
    return live


def test_no_drift_when_only_defaults_differ() -> None:
    assert drifting.compare([DESIRED], {("Deployment", "backend"): _live()}) == []


def test_set_image_and_scale_are_named() -> None:
    live = _live()
    live["spec"]["replicas"] = 3
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "lumina/backend:hotfix"
    found = drifting.compare([DESIRED], {("Deployment", "backend"): live})
    assert [(d.service, d.field, d.desired, d.live) for d in found] == [
        ("backend", "spec.replicas", 1, 3),
        ("backend", "container backend image", "lumina/backend:abc", "lumina/backend:hotfix"),
    ]
    assert "release says 1, live is 3" in found[0].describe()


def test_ignored_fields_are_not_drift() -> None:
    live = _live()
    live["spec"]["replicas"] = 3
    assert drifting.compare([DESIRED], {("Deployment", "backend"): live}, ignore=["replicas"]) == []


def test_env_and_deleted_objects() -> None:
    live = _live()
    live["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "DEBUG", "value": "1"})
    found = drifting.compare([DESIRED], {("Deployment", "backend"): live})
    assert [d.field for d in found] == ["container backend env"]
    assert drifting.compare([DESIRED], {})[0].live == "deleted"


def test_what_the_api_server_fills_into_a_value_from_is_not_drift() -> None:
    """The downward API's defaults (a resourceFieldRef's divisor "0", a fieldRef's
    apiVersion) are served back filled in: the same env, no drift; a changed source is."""
    desired = copy.deepcopy(DESIRED)
    env = desired["spec"]["template"]["spec"]["containers"][0]["env"]
    env.append(
        {
            "name": "MEMORY_LIMIT_BYTES",
            "valueFrom": {"resourceFieldRef": {"resource": "limits.memory"}},
        }
    )
    env.append({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}})
    live = copy.deepcopy(desired)
    live_env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    live_env[1]["valueFrom"]["resourceFieldRef"].update(divisor="0", containerName="backend")
    live_env[2]["valueFrom"]["fieldRef"]["apiVersion"] = "v1"
    assert drifting.compare([desired], {("Deployment", "backend"): live}) == []

    live_env[1]["valueFrom"]["resourceFieldRef"]["resource"] = "limits.cpu"
    found = drifting.compare([desired], {("Deployment", "backend"): live})
    assert [d.field for d in found] == ["container backend env"]
