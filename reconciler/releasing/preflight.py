"""Static checks on a rendered chart before it reaches the cluster.

Pure: rendered objects (and the deployed ones) in, problems out. Who calls it: the
cycle's upgrade action, before anything is applied. Each check refuses an upgrade that
is known to break: Helm would apply it, and the cluster would fail in ways that are
slow to notice (two pods on one ReadWriteOnce volume) or impossible to apply (a changed
Deployment selector is immutable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

Object = Mapping[str, Any]


def _deployments(objects: Iterable[Object]) -> dict[str, Object]:
    return {
        str(obj["metadata"]["name"]): obj
        for obj in objects
        if obj.get("kind") == "Deployment" and obj.get("metadata", {}).get("name")
    }


def _read_write_once_claims(objects: Iterable[Object]) -> set[str]:
    return {
        str(obj["metadata"]["name"])
        for obj in objects
        if obj.get("kind") == "PersistentVolumeClaim"
        and "ReadWriteOnce" in (obj.get("spec", {}).get("accessModes") or [])
    }


def _pod_spec(deployment: Object) -> Mapping[str, Any]:
    spec: Mapping[str, Any] = deployment.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def check(rendered: Iterable[Object], deployed: Iterable[Object] = ()) -> list[str]:
    """Problems that make ``rendered`` unsafe to apply over ``deployed``."""
    rendered = list(rendered)
    problems: list[str] = []
    rwo_claims = _read_write_once_claims(rendered)
    previous = _deployments(deployed)
    for name, deployment in sorted(_deployments(rendered).items()):
        spec = deployment.get("spec", {})
        pod = _pod_spec(deployment)
        for container in pod.get("containers", []):
            missing = [
                probe for probe in ("livenessProbe", "readinessProbe") if not container.get(probe)
            ]
            if missing:
                problems.append(
                    f"Deployment {name}: container {container.get('name')} has no "
                    f"{' or '.join(missing)}; a broken pod would be taken for a healthy one"
                )
        strategy = (spec.get("strategy") or {}).get("type", "RollingUpdate")
        claims = {
            volume["persistentVolumeClaim"]["claimName"]
            for volume in pod.get("volumes", [])
            if volume.get("persistentVolumeClaim")
        }
        shared = sorted(claims & rwo_claims)
        if shared and strategy != "Recreate":
            problems.append(
                f"Deployment {name}: ReadWriteOnce volume {', '.join(shared)} under a "
                f"{strategy} strategy; the new pod would wait for the old one's volume "
                "(Multi-Attach) — use strategy Recreate"
            )
        if shared and int(spec.get("replicas", 1)) > 1:
            problems.append(
                f"Deployment {name}: {spec.get('replicas')} replicas share ReadWriteOnce "
                f"volume {', '.join(shared)}"
            )
        before = previous.get(name)
        if before is not None:
            old = before.get("spec", {}).get("selector", {})
            new = spec.get("selector", {})
            if old != new:
                problems.append(
                    f"Deployment {name}: selector changes from {old} to {new}; selectors "
                    "are immutable, the upgrade would fail — keep only stable labels in it"
                )
    return problems
