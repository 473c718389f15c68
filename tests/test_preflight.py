"""Pre-flight checks refuse known-bad upgrades before anything reaches the cluster."""

from __future__ import annotations

import copy
from typing import Any

from reconciler.releasing import preflight


def _deployment(
    strategy: str = "Recreate", probes: bool = True, selector: str = "backend"
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "backend", "image": "lumina/backend:abc"}
    if probes:
        container["livenessProbe"] = {"httpGet": {"path": "/api/health", "port": 8000}}
        container["readinessProbe"] = {"httpGet": {"path": "/api/ready", "port": 8000}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "backend"},
        "spec": {
            "replicas": 1,
            "strategy": {"type": strategy},
            "selector": {"matchLabels": {"app.kubernetes.io/name": selector}},
            "template": {
                "spec": {
                    "containers": [container],
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "backend-data"}}
                    ],
                }
            },
        },
    }


CLAIM = {
    "apiVersion": "v1",
    "kind": "PersistentVolumeClaim",
    "metadata": {"name": "backend-data"},
    "spec": {"accessModes": ["ReadWriteOnce"]},
}


def test_a_sound_chart_passes() -> None:
    assert preflight.check([_deployment(), CLAIM], [_deployment(), CLAIM]) == []


def test_rolling_update_on_a_read_write_once_volume_is_refused() -> None:
    problems = preflight.check([_deployment(strategy="RollingUpdate"), CLAIM])
    assert len(problems) == 1
    assert "ReadWriteOnce volume backend-data" in problems[0] and "Recreate" in problems[0]


def test_default_strategy_counts_as_rolling_update() -> None:
    deployment = _deployment()
    del deployment["spec"]["strategy"]
    assert "RollingUpdate" in preflight.check([deployment, CLAIM])[0]


def test_container_without_probes_is_refused() -> None:
    problems = preflight.check([_deployment(probes=False), CLAIM])
    assert problems == [
        "Deployment backend: container backend has no livenessProbe or readinessProbe; "
        "a broken pod would be taken for a healthy one"
    ]


def test_changed_selector_is_refused() -> None:
    before = _deployment()
    after = copy.deepcopy(before)
    after["spec"]["selector"]["matchLabels"]["app.kubernetes.io/version"] = "2"
    problems = preflight.check([after, CLAIM], [before, CLAIM])
    assert len(problems) == 1 and "selectors are immutable" in problems[0]
