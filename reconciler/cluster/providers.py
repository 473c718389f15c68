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


@dataclasses.dataclass(frozen=True)
class ClusterInfo:
    """How to talk to a running cluster."""

    kubeconfig: pathlib.Path
    context: str
    node_ip: str


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
