"""Drift: what was changed by hand in the cluster since the release was applied.

Pure: the release's manifest and the live objects in, differences out. Who calls it: the
``drift`` command and the daemon's periodic check. Only fields people change by hand and
that matter are compared — a Deployment's replicas, and each container's image, env and
resources — so defaulted fields the API server adds never read as drift. Fields others
own legitimately (replicas under an autoscaler) are ignored by setting.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

NAME_LABEL = "app.kubernetes.io/name"


@dataclasses.dataclass(frozen=True)
class Drift:
    service: str
    kind: str
    name: str
    field: str
    desired: Any
    live: Any

    def describe(self) -> str:
        return (
            f"{self.service}: {self.kind}/{self.name} {self.field}: "
            f"release says {self.desired!r}, live is {self.live!r}"
        )

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _containers(deployment: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    spec = deployment.get("spec", {}).get("template", {}).get("spec", {})
    return {str(c.get("name")): c for c in spec.get("containers", [])}


def _value_from(source: Any, container_name: str) -> Any:
    """A ``valueFrom`` without what the API server fills in: a fieldRef's apiVersion
    ``v1``, a resourceFieldRef's divisor ``1`` (served as "0" or "1") and its container
    name when that is the container's own."""
    if not isinstance(source, Mapping):
        return source
    normal = dict(source)
    field_ref = normal.get("fieldRef")
    if isinstance(field_ref, Mapping):
        normal["fieldRef"] = {
            k: v for k, v in field_ref.items() if not (k == "apiVersion" and v == "v1")
        }
    resource_ref = normal.get("resourceFieldRef")
    if isinstance(resource_ref, Mapping):
        normal["resourceFieldRef"] = {
            k: v
            for k, v in resource_ref.items()
            if not (k == "divisor" and str(v) in ("0", "1"))
            and not (k == "containerName" and v in ("", container_name))
        }
    return normal


def _env(container: Mapping[str, Any]) -> dict[str, Any]:
    name = str(container.get("name", ""))
    return {
        str(item.get("name")): item["value"]
        if "value" in item
        else _value_from(item.get("valueFrom"), name)
        for item in container.get("env") or []
    }


def _normal_quantity(value: Any) -> str:
    text = str(value)
    # The API server canonicalises quantities ("0.5" -> "500m", "512Mi" stays).
    if text.replace(".", "", 1).isdigit() and "." in text:
        return f"{int(float(text) * 1000)}m"
    return text


def _resources(container: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    resources = container.get("resources") or {}
    return {
        part: {name: _normal_quantity(value) for name, value in (resources.get(part) or {}).items()}
        for part in ("requests", "limits")
    }


def compare(
    desired: Iterable[Mapping[str, Any]],
    live: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    ignore: Iterable[str] = (),
) -> list[Drift]:
    """Differences between the release's Deployments and the live ones.

    ``live`` maps (kind, name) to the live object; ``ignore`` names fields to skip
    (``replicas``, ``image``, ``env``, ``resources``).
    """
    skipped = set(ignore)
    found: list[Drift] = []
    for wanted in desired:
        if wanted.get("kind") != "Deployment":
            continue
        name = str(wanted["metadata"]["name"])
        service = str(wanted["metadata"].get("labels", {}).get(NAME_LABEL, name))
        current = live.get(("Deployment", name))
        if current is None:
            found.append(Drift(service, "Deployment", name, "object", "present", "deleted"))
            continue
        if "replicas" not in skipped:
            want, have = (
                wanted.get("spec", {}).get("replicas", 1),
                current.get("spec", {}).get("replicas", 1),
            )
            if want != have:
                found.append(Drift(service, "Deployment", name, "spec.replicas", want, have))
        live_containers = _containers(current)
        for container_name, container in _containers(wanted).items():
            other = live_containers.get(container_name, {})
            prefix = f"container {container_name}"
            checks = (
                ("image", container.get("image"), other.get("image")),
                ("env", _env(container), _env(other)),
                ("resources", _resources(container), _resources(other)),
            )
            for field, want, have in checks:
                if field not in skipped and want != have:
                    found.append(
                        Drift(service, "Deployment", name, f"{prefix} {field}", want, have)
                    )
    return found
