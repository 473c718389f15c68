"""The ``kind`` cluster provider: a cluster in Docker, images copied in with ``kind load``.

A kind node is a container, so a NodePort is reachable from the host only through a port
the container publishes: the cluster is created from a config (``kind create cluster
--config``) whose ``extraPortMappings`` publish NodePort 30080 on ``127.0.0.1:30080``.
kind cannot add a mapping to an existing cluster; one created without it gets no URL, and
the note says how to recreate it or port-forward instead.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import tempfile

from reconciler import plugin_api

CLUSTER = os.environ.get("LUMINA_KIND_CLUSTER", "lumina")
NODE = f"{CLUSTER}-control-plane"
HOST_ADDRESS = "127.0.0.1"

#: kind's cluster config (kind.x-k8s.io/v1alpha4): one control-plane node publishing the
#: frontend's NodePort on loopback only.
CONFIG = f"""\
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
    extraPortMappings:
      - containerPort: {plugin_api.APP_NODE_PORT}
        hostPort: {plugin_api.APP_NODE_PORT}
        listenAddress: "{HOST_ADDRESS}"
        protocol: TCP
"""


def _kind(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kind", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise plugin_api.PermanentError(
            f"kind {' '.join(args)} failed: {(result.stderr or result.stdout).strip()[-800:]}"
        )
    return result


def _docker_inspect(template: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", template, NODE], capture_output=True, text=True, check=False
    ).stdout.strip()


def _published_address(bindings: str) -> str | None:
    """The host address NodePort 30080 is published on, from ``docker inspect``'s
    ``HostConfig.PortBindings`` (``{"30080/tcp": [{"HostIp": "127.0.0.1", ...}]}``)."""
    try:
        found = json.loads(bindings or "null") or {}
    except ValueError:
        return None
    for binding in found.get(f"{plugin_api.APP_NODE_PORT}/tcp") or []:
        if str(binding.get("HostPort")) == str(plugin_api.APP_NODE_PORT):
            host = str(binding.get("HostIp") or "")
            return HOST_ADDRESS if host in ("", "0.0.0.0", "::") else host  # noqa: S104
    return None


class KindProvider:
    name = "kind"
    namespace = "lumina"
    node_port = plugin_api.APP_NODE_PORT

    def configure(self, config: plugin_api.Settings) -> None:
        """The environment's namespace and NodePort; the cluster publishes 30080 only."""
        self.namespace = config.namespace
        self.node_port = config.node_port

    def available(self) -> bool:
        return shutil.which("kind") is not None and shutil.which("docker") is not None

    def _exists(self) -> bool:
        return CLUSTER in _kind("get", "clusters").stdout.split()

    def ensure_up(self) -> plugin_api.ClusterInfo:
        if not self._exists():
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="lumina-kind-") as config:
                config.write(CONFIG)
                config.flush()
                _kind(
                    "create",
                    "cluster",
                    "--name",
                    CLUSTER,
                    "--config",
                    config.name,
                    "--wait",
                    "120s",
                )
        kubeconfig = pathlib.Path(
            os.environ.get("KUBECONFIG", pathlib.Path.home() / ".kube" / "config")
        )
        ip = _docker_inspect("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
        published = _published_address(_docker_inspect("{{json .HostConfig.PortBindings}}"))
        if published is not None and self.node_port != plugin_api.APP_NODE_PORT:
            return plugin_api.ClusterInfo(
                kubeconfig=kubeconfig,
                context=f"kind-{CLUSTER}",
                node_ip=ip,
                app_url_note=f"kind cluster {CLUSTER} publishes NodePort "
                f"{plugin_api.APP_NODE_PORT} only, and this environment serves "
                f"{self.node_port}: use {plugin_api.port_forward(self.namespace)}",
            )
        if published is None:
            return plugin_api.ClusterInfo(
                kubeconfig=kubeconfig,
                context=f"kind-{CLUSTER}",
                node_ip=ip,
                app_url_note=f"kind cluster {CLUSTER} was created without a port mapping for "
                f"NodePort {plugin_api.APP_NODE_PORT}: recreate it (`kind delete cluster --name "
                f"{CLUSTER}`, then bootstrap again) or use "
                f"{plugin_api.port_forward(self.namespace)}",
            )
        return plugin_api.ClusterInfo(
            kubeconfig=kubeconfig,
            context=f"kind-{CLUSTER}",
            node_ip=ip,
            app_url=plugin_api.node_port_url(published),
        )

    def down(self) -> None:
        # kind has no stop; stopping the node container keeps its volumes for `up`.
        subprocess.run(["docker", "stop", NODE], check=False)

    def status(self) -> dict[str, str]:
        return {"control-plane": _docker_inspect("{{.State.Status}}") or "absent"}

    def docker_env(self) -> dict[str, str]:
        return {key: value for key, value in os.environ.items() if key.startswith("DOCKER_")}

    def load_images(self, images: list[str]) -> None:
        if images:
            _kind("load", "docker-image", "--name", CLUSTER, *images)
