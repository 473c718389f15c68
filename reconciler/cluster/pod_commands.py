"""Commands in a service's running pod: find the pod, run a command there.

Who calls it: :mod:`reconciler.releasing.pre_upgrading` (a plugin's pre-upgrade hook gets a
:class:`services.PodCommand` bound here) and the ``db`` commands of the CLI. The
Kubernetes side is :meth:`kube.Kube.exec`; this module decides which pod and container,
and turns a failed run into :class:`services.PodCommandError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from reconciler import errors, services
from reconciler.cluster import kube, rollout


class NoRunningPodError(errors.PermanentError):
    """The service has no pod whose container is running, so nothing can run there."""


@dataclasses.dataclass(frozen=True)
class RunningPod:
    name: str
    container: str


def _container_running(pod: kube.Object, container: str) -> bool:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return bool((status.get("state") or {}).get("running"))
    return False


def running_pod(cluster: kube.Connection, namespace: str, service: str) -> RunningPod | None:
    """A pod of ``service`` (by its name label) whose container is running, not leaving.

    The container is the one named after the service, else the pod's first; a pod in
    CrashLoopBackOff or still starting has no running container and does not count.
    """
    selector = f"{rollout.NAME_LABEL}={service}"
    for pod in cluster.list("v1", "Pod", namespace, label_selector=selector):
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        if pod.get("status", {}).get("phase") != "Running":
            continue
        names = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
        if not names:
            continue
        container = service if service in names else names[0]
        if _container_running(pod, container):
            return RunningPod(str(pod["metadata"]["name"]), container)
    return None


def bind(cluster: kube.Connection, namespace: str, pod: RunningPod) -> services.PodCommand:
    """A :class:`services.PodCommand` that runs in ``pod``."""

    def run(argv: Sequence[str], *, timeout: float = 120.0) -> str:
        result = cluster.exec(namespace, pod.name, pod.container, argv, timeout=timeout)
        if result.exit_code != 0:
            output = result.stderr or result.stdout or result.reason
            raise services.PodCommandError(argv, result.exit_code, output)
        return result.stdout

    return run


def run_in_service(
    cluster: kube.Connection, namespace: str, service: str, argv: Sequence[str], *, timeout: float
) -> str:
    """Run ``argv`` in the service's running pod; stdout, or a typed error saying why not."""
    pod = running_pod(cluster, namespace, service)
    if pod is None:
        raise NoRunningPodError(
            f"no running {service} pod in namespace {namespace}",
            hint=f"see `lumina-reconcile diagnose {service}`; start the stack first",
        )
    try:
        return bind(cluster, namespace, pod)(argv, timeout=timeout)
    except services.PodCommandError as exc:
        raise errors.PermanentError(f"in pod {pod.name}: {exc}") from exc
