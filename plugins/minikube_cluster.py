"""The ``minikube`` cluster provider: the seed's target, used wherever minikube exists.

Images are built straight into minikube's own Docker engine (``minikube docker-env``),
so nothing needs loading afterwards. The cluster is started with the seed's resources.

The app's URL is what ``minikube service frontend -n lumina --url`` prints by default
(``http://{{.IP}}:{{.Port}}``: the node's IP, ``minikube ip``, and the NodePort). With the
docker driver under Docker Desktop (macOS, Windows, WSL 2 with Docker Desktop) the node's
IP is not reachable from the host, and only ``minikube service`` (a tunnel it keeps open
while it runs) reaches the app: then no URL is offered, and the note says so.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
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
    namespace = "lumina"
    node_port = plugin_api.APP_NODE_PORT

    def configure(self, config: plugin_api.Settings) -> None:
        """The environment's namespace and NodePort (``namespace``, ``node_port``)."""
        self.namespace = config.namespace
        self.node_port = config.node_port

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
        node_ip = _minikube("ip").stdout.strip()
        tunnel = f"minikube service frontend -n {self.namespace} --url"
        if self._behind_docker_desktop():
            return plugin_api.ClusterInfo(
                kubeconfig=kubeconfig,
                context=PROFILE,
                node_ip=node_ip,
                app_url_note=f"the docker driver's node is not reachable from here: run "
                f"`{tunnel}` (it keeps a tunnel open and prints the URL)",
            )
        return plugin_api.ClusterInfo(
            kubeconfig=kubeconfig,
            context=PROFILE,
            node_ip=node_ip,
            app_url=plugin_api.node_port_url(node_ip, self.node_port),
            app_url_note=f"the same URL as `{tunnel}`",
        )

    def _driver(self) -> str:
        found = _minikube("profile", "list", "-o", "json", check=False)
        try:
            profiles = json.loads(found.stdout or "{}").get("valid") or []
        except ValueError:
            return ""
        for profile in profiles:
            if profile.get("Name") == PROFILE:
                return str((profile.get("Config") or {}).get("Driver", ""))
        return ""

    def _behind_docker_desktop(self) -> bool:
        """The docker driver on an engine in a VM of its own (Docker Desktop)."""
        if self._driver() != "docker":
            return False
        if platform.system() != "Linux":
            return True
        engine = subprocess.run(
            ["docker", "info", "--format", "{{.OperatingSystem}}"],
            capture_output=True,
            text=True,
            check=False,
        )
        return "Docker Desktop" in engine.stdout

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
