"""The release's namespace and its NodePort: checked before an upgrade, created first.

Who calls it: the cycle's upgrade action. It reads the namespace and the cluster's
NodePorts before anything is written (:func:`inspect`, :func:`port_conflicts` are
pure), then applies the namespace before any object that lives in it — on a first
install into an empty cluster nothing else could be created. A namespace that another
tool manages is refused, never taken over; one that exists without the restricted Pod
Security labels (``kubectl create namespace``) gets them, and the cycle says so.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import errors
from reconciler.cluster import kube

MANAGED_BY = "lumina-reconcile"
_PSS_MODES = ("enforce", "warn", "audit")
#: labels and annotations by which other deployment tools mark what they own
_OTHER_OWNERS = (
    "kustomize.toolkit.fluxcd.io/name",
    "helm.toolkit.fluxcd.io/name",
    "argocd.argoproj.io/instance",
    "app.kubernetes.io/instance",
)


class NamespaceRefusedError(errors.PermanentError):
    """The namespace belongs to something else, or cannot be used as it is."""


class NodePortTakenError(errors.PermanentError):
    """The app's NodePort is already served by a Service of another namespace."""


def manifest(namespace: str) -> kube.Object:
    """The namespace, enforcing the restricted Pod Security profile."""
    labels = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in _PSS_MODES}
    labels["app.kubernetes.io/managed-by"] = MANAGED_BY
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace, "labels": labels},
    }


@dataclasses.dataclass(frozen=True)
class NamespaceStep:
    """What the upgrade must do about its namespace before anything else."""

    #: the object to apply, or None when the namespace is already as it should be
    apply: kube.Object | None
    #: one line for the cycle's message ("" when nothing changes)
    note: str


def _owner(metadata: Mapping[str, Any], release: str) -> str:
    """Who else manages the namespace, in words; "" when nobody or this tool does."""
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    managed_by = str(labels.get("app.kubernetes.io/managed-by") or "")
    if managed_by == "Helm":
        # The chart's own namespace.yaml (namespace.create) under this release is ours.
        owner_release = str(annotations.get("meta.helm.sh/release-name") or "")
        if owner_release and owner_release != release:
            return f"Helm release {owner_release!r} (annotation meta.helm.sh/release-name)"
    elif managed_by and managed_by != MANAGED_BY:
        return f"{managed_by} (label app.kubernetes.io/managed-by={managed_by})"
    for key in _OTHER_OWNERS:
        value = labels.get(key) or annotations.get(key)
        if value and not (key == "app.kubernetes.io/instance" and value == release):
            return f"{key}={value}"
    return ""


def inspect(found: kube.Object | None, namespace: str, release: str) -> NamespaceStep:
    """What to do about ``namespace`` given what the cluster holds (``found``, or None).

    Raises :class:`NamespaceRefusedError` for a namespace another tool manages, and a
    temporary error for one being deleted.
    """
    wanted = manifest(namespace)
    if found is None:
        return NamespaceStep(wanted, f"namespace {namespace} created (restricted Pod Security)")
    metadata = found.get("metadata") or {}
    if metadata.get("deletionTimestamp") or (found.get("status") or {}).get("phase") == (
        "Terminating"
    ):
        raise errors.TemporaryError(
            f"namespace {namespace} is being deleted",
            hint="wait until it is gone; the next cycle creates it again",
            retry_after=10,
        )
    owner = _owner(metadata, release)
    if owner:
        raise NamespaceRefusedError(
            f"namespace {namespace} is managed by {owner}, not by {MANAGED_BY}",
            hint="set LUMINA_NAMESPACE to a namespace of its own, or remove that "
            "marker if this tool is to own the namespace",
        )
    labels = metadata.get("labels") or {}
    weaker = {
        mode: str(labels.get(f"pod-security.kubernetes.io/{mode}") or "unset")
        for mode in _PSS_MODES
        if labels.get(f"pod-security.kubernetes.io/{mode}") != "restricted"
    }
    if weaker:
        said = ", ".join(f"{mode}={level}" for mode, level in weaker.items())
        return NamespaceStep(
            wanted,
            f"namespace {namespace} did not enforce restricted Pod Security ({said}): "
            "labelled restricted",
        )
    if labels.get("app.kubernetes.io/managed-by") not in (MANAGED_BY, "Helm"):
        return NamespaceStep(wanted, f"namespace {namespace} adopted (restricted Pod Security)")
    return NamespaceStep(None, "")


def port_conflicts(services: Iterable[kube.Object], namespace: str, port: int) -> list[str]:
    """Services outside ``namespace`` that already serve NodePort ``port``, by name."""
    found = []
    for service in services:
        metadata = service.get("metadata") or {}
        if metadata.get("namespace") == namespace:
            continue
        for entry in (service.get("spec") or {}).get("ports") or []:
            if entry.get("node_port", entry.get("nodePort")) == port:
                found.append(
                    f"Service {metadata.get('name')} in namespace {metadata.get('namespace')}"
                )
    return found


def check_node_port(cluster: kube.Connection, namespace: str, port: int) -> None:
    """Refuse, before anything is installed, a NodePort another environment serves.

    A kube context that may not list Services cluster-wide skips the check: the API
    server refuses a taken NodePort itself then, at apply.
    """
    try:
        services = cluster.list("v1", "Service", None)
    except kube.ApiRefusedError:
        return
    taken = port_conflicts(services, namespace, port)
    if taken:
        raise NodePortTakenError(
            f"NodePort {port} is already served by {', '.join(taken)}",
            hint="set LUMINA_NODE_PORT (30000-32767) to a free port for this environment, "
            "or remove the other one",
        )


def prepare(
    cluster: kube.Connection, namespace: str, release: str, port: int | None
) -> NamespaceStep:
    """Every read and check the namespace needs before an upgrade writes anything."""
    step = inspect(cluster.get("v1", "Namespace", None, namespace), namespace, release)
    if port is not None:
        check_node_port(cluster, namespace, port)
    return step
