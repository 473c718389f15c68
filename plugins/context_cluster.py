"""The ``context`` cluster provider: an existing cluster named by a kube context.

It never starts or stops anything. Before the first upgrade it refuses, with a clear
message, a context whose API server does not answer or whose namespace this identity may
not write (a SelfSubjectAccessReview). Images reach such a cluster only through a
registry (``LUMINA_REGISTRY``): there is no node to load them into.
"""

from __future__ import annotations

import os
import pathlib

from reconciler import plugin_api


class ContextProvider:
    name = "context"

    def __init__(self) -> None:
        self.context = os.environ.get("LUMINA_KUBE_CONTEXT") or None
        self.namespace = os.environ.get("LUMINA_NAMESPACE", "lumina")
        self.kubeconfig = pathlib.Path(
            os.environ.get("KUBECONFIG", pathlib.Path.home() / ".kube" / "config")
        )

    def configure(self, config: plugin_api.Settings) -> None:
        """The repository's settings (file, then LUMINA_* variables) name context and namespace."""
        self.context = config.kube_context or self.context
        self.namespace = config.namespace

    def available(self) -> bool:
        return self.kubeconfig.exists()

    def ensure_up(self) -> plugin_api.ClusterInfo:
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
        return plugin_api.ClusterInfo(
            kubeconfig=self.kubeconfig, context=self.context or "", node_ip=""
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
