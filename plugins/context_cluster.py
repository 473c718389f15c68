"""The ``context`` cluster provider: an existing cluster named by a kube context.

It never starts or stops anything. Before the first upgrade it refuses, with a clear
message, a context whose API server does not answer or whose namespace this identity may
not write (a SelfSubjectAccessReview). Images reach such a cluster only through a
registry (``LUMINA_REGISTRY``): there is no node to load them into.
"""

from __future__ import annotations

import os
import pathlib

from reconciler import errors, kube, providers, settings


class ContextProvider:
    name = "context"

    def __init__(self) -> None:
        self.context = os.environ.get("LUMINA_KUBE_CONTEXT") or None
        self.namespace = os.environ.get("LUMINA_NAMESPACE", "lumina")
        self.kubeconfig = pathlib.Path(
            os.environ.get("KUBECONFIG", pathlib.Path.home() / ".kube" / "config")
        )

    def configure(self, config: settings.Settings) -> None:
        """The repository's settings (file, then LUMINA_* variables) name context and namespace."""
        self.context = config.kube_context or self.context
        self.namespace = config.namespace

    def available(self) -> bool:
        return self.kubeconfig.exists()

    def ensure_up(self) -> providers.ClusterInfo:
        connection = kube.Kube(self.kubeconfig, self.context)
        try:
            version = connection.version()
        except errors.LuminaError as exc:
            raise errors.PermanentError(
                f"kube context {self.context or '(current)'}: "
                f"the API server is not reachable ({exc})",
                hint="check the context with `kubectl --context ... get ns`",
            ) from exc
        for resource, group in (("deployments", "apps"), ("secrets", ""), ("services", "")):
            if not connection.can_i("patch", resource, self.namespace, group):
                raise errors.PermanentError(
                    f"kube context {self.context or '(current)'} ({version}) may not write "
                    f"{resource} in namespace {self.namespace}",
                    hint="ask for RBAC on that namespace, or choose another with LUMINA_NAMESPACE",
                )
        return providers.ClusterInfo(
            kubeconfig=self.kubeconfig, context=self.context or "", node_ip=""
        )

    def down(self) -> None:
        """A shared cluster is never stopped by this tool."""

    def status(self) -> dict[str, str]:
        try:
            return {"api-server": f"running ({kube.Kube(self.kubeconfig, self.context).version()})"}
        except errors.LuminaError as exc:
            return {"api-server": f"unreachable: {exc.message}"}

    def docker_env(self) -> dict[str, str]:
        return {key: value for key, value in os.environ.items() if key.startswith("DOCKER_")}

    def load_images(self, images: list[str]) -> None:
        """Images reach a shared cluster through the registry they were pushed to."""
