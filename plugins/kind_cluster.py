"""The ``kind`` cluster provider: a cluster in Docker, images copied in with ``kind load``."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

from reconciler import plugin_api

CLUSTER = os.environ.get("LUMINA_KIND_CLUSTER", "lumina")


def _kind(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["kind", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise plugin_api.PermanentError(
            f"kind {' '.join(args)} failed: {(result.stderr or result.stdout).strip()[-800:]}"
        )
    return result


class KindProvider:
    name = "kind"

    def available(self) -> bool:
        return shutil.which("kind") is not None and shutil.which("docker") is not None

    def _exists(self) -> bool:
        return CLUSTER in _kind("get", "clusters").stdout.split()

    def ensure_up(self) -> plugin_api.ClusterInfo:
        if not self._exists():
            _kind("create", "cluster", "--name", CLUSTER, "--wait", "120s")
        kubeconfig = pathlib.Path(
            os.environ.get("KUBECONFIG", pathlib.Path.home() / ".kube" / "config")
        )
        node = f"{CLUSTER}-control-plane"
        ip = subprocess.run(
            [
                "docker",
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                node,
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return plugin_api.ClusterInfo(kubeconfig=kubeconfig, context=f"kind-{CLUSTER}", node_ip=ip)

    def down(self) -> None:
        # kind has no stop; stopping the node container keeps its volumes for `up`.
        subprocess.run(["docker", "stop", f"{CLUSTER}-control-plane"], check=False)

    def status(self) -> dict[str, str]:
        running = subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Status}}", f"{CLUSTER}-control-plane"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return {"control-plane": running or "absent"}

    def docker_env(self) -> dict[str, str]:
        return {key: value for key, value in os.environ.items() if key.startswith("DOCKER_")}

    def load_images(self, images: list[str]) -> None:
        if images:
            _kind("load", "docker-image", "--name", CLUSTER, *images)
