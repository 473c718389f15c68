"""The ``context`` cluster provider: an existing cluster named by a kube context.

It never starts or stops anything. Before the first upgrade it refuses, with a clear
message, a context whose API server does not answer or whose namespace this identity may
not write (a SelfSubjectAccessReview). Images reach such a cluster only through a
registry (``LUMINA_REGISTRY``): there is no node to load them into.

The app's URL is the frontend's NodePort on a node's address (ExternalIP, else
InternalIP, of a Ready node). Whether this machine can reach that address only the
network knows, so the note says to port-forward when it does not answer; where this
identity may not list nodes, no URL is offered and the note says to port-forward.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import yaml

from reconciler import plugin_api


def _node_address(connection: plugin_api.KubeConnection) -> str | None:
    """A Ready node's ExternalIP, else its InternalIP; None if nodes cannot be read."""
    try:
        nodes = connection.list("v1", "Node", None)
    except plugin_api.LuminaError:
        return None  # a namespace-scoped identity may not list nodes
    return best_address(nodes)


def best_address(nodes: list[dict[str, Any]]) -> str | None:
    """Of these Node objects: a Ready node's ExternalIP, else InternalIP, else any node's."""
    ranked: list[tuple[int, str]] = []
    for node in nodes:
        status = node.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        for address in status.get("addresses") or []:
            kind = address.get("type")
            if kind in ("ExternalIP", "InternalIP") and address.get("address"):
                rank = (0 if ready else 2) + (0 if kind == "ExternalIP" else 1)
                ranked.append((rank, str(address["address"])))
    return min(ranked)[1] if ranked else None


class ContextProvider:
    name = "context"

    def __init__(self) -> None:
        self.context = os.environ.get("LUMINA_KUBE_CONTEXT") or None
        self.namespace = os.environ.get("LUMINA_NAMESPACE", "lumina")
        self.node_port = plugin_api.APP_NODE_PORT
        # KUBECONFIG may list several files, as kubectl allows: the first one is read.
        listed = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
        self.kubeconfig = (
            pathlib.Path(listed) if listed else pathlib.Path.home() / ".kube" / "config"
        )

    def configure(self, config: plugin_api.Settings) -> None:
        """The repository's settings (file, then LUMINA_* variables) name context and namespace."""
        self.context = config.kube_context or self.context
        self.namespace = config.namespace
        self.node_port = config.node_port

    def available(self) -> bool:
        return self.kubeconfig.exists()

    def _current_context(self) -> str | None:
        """The kubeconfig's ``current-context``: what kubectl would use, named, so Helm
        and every client of this run act on the same one."""
        try:
            document = yaml.safe_load(self.kubeconfig.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return None  # the connection below reports the file's problem
        current = document.get("current-context") if isinstance(document, dict) else None
        return str(current) if current else None

    def ensure_up(self) -> plugin_api.ClusterInfo:
        self.context = self.context or self._current_context()
        connection = plugin_api.KubeConnection(self.kubeconfig, self.context)
        try:
            version = connection.version()
        except plugin_api.LuminaError as exc:
            raise plugin_api.PermanentError(
                f"kube context {self.context or '(current)'}: "
                f"the API server is not reachable ({exc})",
                hint="check the context with `kubectl --context ... get ns`",
            ) from exc
        for resource, group in (("deployments", "apps"), ("secrets", ""), ("services", "")):
            if not connection.can_i("patch", resource, self.namespace, group):
                raise plugin_api.PermanentError(
                    f"kube context {self.context or '(current)'} ({version}) may not write "
                    f"{resource} in namespace {self.namespace}",
                    hint="ask for RBAC on that namespace, or choose another with LUMINA_NAMESPACE",
                )
        address = _node_address(connection)
        forward = f"use {plugin_api.port_forward(self.namespace)}"
        if address is None:
            return plugin_api.ClusterInfo(
                kubeconfig=self.kubeconfig,
                context=self.context or "",
                node_ip="",
                app_url_note=f"no node address is readable with this context: {forward}",
            )
        return plugin_api.ClusterInfo(
            kubeconfig=self.kubeconfig,
            context=self.context or "",
            node_ip=address,
            app_url=plugin_api.node_port_url(address, self.node_port),
            app_url_note=f"if the node's address is not reachable from here, {forward}",
        )

    def down(self) -> None:
        """A shared cluster is never stopped by this tool."""

    def status(self) -> dict[str, str]:
        try:
            version = plugin_api.KubeConnection(self.kubeconfig, self.context).version()
            return {"api-server": f"running ({version})"}
        except plugin_api.LuminaError as exc:
            return {"api-server": f"unreachable: {exc.message}"}

    def docker_env(self) -> dict[str, str]:
        return {key: value for key, value in os.environ.items() if key.startswith("DOCKER_")}

    def load_images(self, images: list[str]) -> None:
        """Images reach a shared cluster through the registry they were pushed to."""
