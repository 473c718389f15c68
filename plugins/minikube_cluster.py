"""The ``minikube`` cluster provider: the seed's target, used wherever minikube exists.

Images are built straight into minikube's own Docker engine (``minikube docker-env``),
so nothing needs loading afterwards. The cluster is started with the seed's resources.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess

from reconciler import plugin_api

PROFILE = os.environ.get("LUMINA_MINIKUBE_PROFILE", "minikube")
START_ARGS = ("--memory=4096", "--cpus=2")


def _minikube(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["minikube", "-p", PROFILE, *args], capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        raise plugin_api.PermanentError(
            f"minikube {' '.join(args)} failed: {(result.stderr or result.stdout).strip()[-800:]}",
            hint="see `minikube logs`",
        )
    return result


class MinikubeProvider:
    name = "minikube"

    def available(self) -> bool:
        return shutil.which("minikube") is not None

    def _running(self) -> bool:
        found = _minikube("status", "-o", "json", check=False)
        try:
            return bool(json.loads(found.stdout or "{}").get("APIServer") == "Running")
        except ValueError:
            return False

    def ensure_up(self) -> plugin_api.ClusterInfo:
        if not self._running():
            _minikube("start", *START_ARGS)
        kubeconfig = pathlib.Path(
            os.environ.get("KUBECONFIG", pathlib.Path.home() / ".kube" / "config")
        )
        return plugin_api.ClusterInfo(
            kubeconfig=kubeconfig, context=PROFILE, node_ip=_minikube("ip").stdout.strip()
        )

    def down(self) -> None:
        _minikube("stop")

    def status(self) -> dict[str, str]:
        found = _minikube("status", "-o", "json", check=False)
        try:
            data = json.loads(found.stdout or "{}")
        except ValueError:
            return {"minikube": "stopped"}
        return {
            key.lower(): "running" if value in ("Running", "Configured") else str(value).lower()
            for key, value in data.items()
            if key in ("Host", "Kubelet", "APIServer", "Kubeconfig")
        }

    def docker_env(self) -> dict[str, str]:
        output = _minikube("docker-env", "--shell", "none").stdout
        return dict(
            line.split("=", 1) for line in output.splitlines() if "=" in line and line.strip()
        )

    def load_images(self, images: list[str]) -> None:
        """Nothing to do: images were built by minikube's own engine."""
