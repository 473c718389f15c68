"""The cluster-provider plugin kind: where the stack runs and how images get there.

Providers (minikube, kind, an existing kube context, the local from-source cluster) are
found through the ``lumina.providers`` entry-point group. The reconciler asks the
provider how to reach the cluster and how built images reach its runtime; it never
special-cases one.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Protocol, runtime_checkable

from reconciler import settings

#: The frontend's NodePort (the chart's ``frontend.service.nodePort``, the seed's 30080).
APP_NODE_PORT = 30080


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """How to talk to a running cluster, and where its users reach the app.

    ``app_url`` is where the frontend's NodePort answers from this machine
    (``http://127.0.0.1:30080`` on the local cluster and kind, the node's address on
    minikube), or ``""`` when the provider cannot offer one; ``app_url_note`` then says
    what to do instead (a port-forward), and otherwise what to try if it does not answer.
    """

    kubeconfig: pathlib.Path
    context: str
    node_ip: str
    app_url: str = ""
    app_url_note: str = ""


def node_port_url(host: str, port: int = APP_NODE_PORT) -> str:
    """``http://host:port``, with brackets around an IPv6 address."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def port_forward(namespace: str = "lumina") -> str:
    """What a user runs where no NodePort is reachable: a port-forward to the frontend."""
    return (
        f"kubectl -n {namespace} port-forward svc/frontend 8080:3000 (then http://127.0.0.1:8080)"
    )


PORT_FORWARD = port_forward()


@runtime_checkable
class ClusterProvider(Protocol):
    """A way to obtain a Kubernetes cluster and get locally built images into it."""

    name: str

    def available(self) -> bool:
        """Whether this provider can work on this machine (tools present, OS fits)."""
        ...

    def ensure_up(self) -> ClusterInfo:
        """Start (and first build, if needed) the cluster; quick when already up."""
        ...

    def down(self) -> None:
        """Stop the cluster, keeping its state and volumes."""
        ...

    def status(self) -> dict[str, str]:
        """Health of each component, e.g. ``{"kube-apiserver": "running"}``."""
        ...

    def docker_env(self) -> dict[str, str]:
        """Environment for docker builds against the daemon the cluster can use."""
        ...

    def load_images(self, images: list[str]) -> None:
        """Make freshly built images visible to the cluster's runtime."""
        ...


@runtime_checkable
class ConfigurableProvider(Protocol):
    """A provider that reads the repository's settings (optional, like a pluggy hook)."""

    def configure(self, config: settings.Settings) -> None:
        """Take what it needs from ``config`` before any other call."""
        ...


@runtime_checkable
class WipeableProvider(Protocol):
    """A provider that can wipe its cluster (optional): ``lumina-reconcile cluster wipe``.

    Providers without it (minikube, kind, an existing context) leave that to their own
    tools; :func:`wipe_elsewhere` says which.
    """

    def wipe(self) -> None:
        """Stop the cluster and remove its state (Kubernetes objects, images, certificates,
        volumes), keeping what makes the next start quick (built binaries): the next
        ``ensure_up`` starts the cluster from empty. Prints what it removes; asks nothing.
        """
        ...


def wipe_elsewhere(provider: str, namespace: str) -> str:
    """What a user runs instead of ``cluster wipe`` where the provider cannot wipe."""
    then = "then `lumina-reconcile cluster up` (or `nox -s bootstrap`) starts one from empty"
    if provider == "minikube":
        return f"`minikube delete` removes minikube's cluster and all its state; {then}"
    if provider == "kind":
        return f"`kind delete cluster --name lumina` removes kind's cluster and its state; {then}"
    if provider == "context":
        return (
            "a cluster reached through a kube context is never wiped by this tool; to start "
            f"the app from empty, delete its namespace (`kubectl delete namespace {namespace}`)"
        )
    return f"delete the cluster with the {provider} provider's own tool; {then}"
