"""The ``local`` cluster provider: a real single-node Kubernetes on this machine.

Kubernetes v1.34, etcd, CoreDNS and Helm are compiled from the Go module proxy by
``scripts/build.sh`` and run as plain host processes with Debian's containerd, runc
and CNI plugins (``scripts/up.sh``). Everything is cached in ``~/.cache/lumina``
(``LUMINA_CACHE``), so the first ``ensure_up`` takes a long build and later ones
seconds. Images are built by the normal Docker engine and copied into the cluster's
containerd by ``scripts/load-image.sh``. Found by the reconciler through the
``lumina.providers`` entry point; this module only runs the scripts.
"""

from __future__ import annotations

import os
import pathlib
import platform
import shutil
import subprocess

from reconciler import plugin_api

SCRIPTS = pathlib.Path(__file__).resolve().parent / "scripts"
CONTEXT = "lumina-local"
COMPONENTS = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kube-router",
)


def cache_dir() -> pathlib.Path:
    """Where builds and cluster state live (the scripts read the same variable)."""
    return pathlib.Path(os.environ.get("LUMINA_CACHE", pathlib.Path.home() / ".cache" / "lumina"))


class LocalClusterProvider:
    """Builds (once), starts and stops the local cluster through its shell scripts."""

    name = "local"

    def __init__(self, *, output_to_terminal: bool = True) -> None:
        # The first build runs for a long time: its progress lines should reach the
        # user, unless a caller (a test, the daemon) wants the output captured.
        self._output_to_terminal = output_to_terminal
        self._node_port = plugin_api.APP_NODE_PORT

    def configure(self, config: plugin_api.Settings) -> None:
        """The environment's NodePort (``node_port``): kube-proxy serves each on 127.0.0.1."""
        self._node_port = config.node_port

    @property
    def kubeconfig(self) -> pathlib.Path:
        return cache_dir() / "cluster" / "admin.kubeconfig"

    def log_directory(self) -> pathlib.Path:
        """Where each component writes its log (``<component>.log``)."""
        return cache_dir() / "cluster" / "logs"

    def available(self) -> bool:
        if platform.system() != "Linux" or os.geteuid() != 0:
            return False
        built = any((cache_dir() / "k8s").glob("v*/bin/kubelet"))
        # build.sh also looks in Go's usual home when PATH lacks it.
        go = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
        return built or go is not None

    def ensure_up(self) -> plugin_api.ClusterInfo:
        if not self.available():
            raise plugin_api.PermanentError(
                "the local cluster cannot run here",
                hint="it needs Linux, root, and Go (or binaries already built in "
                f"{cache_dir() / 'k8s'}); use minikube, or set LUMINA_CLUSTER to an "
                "existing kube context",
            )
        if not self._healthy():
            self._run("up.sh", what="starting the local cluster")
        # kube-proxy answers NodePorts on 127.0.0.1 too (see the local cluster's README).
        return plugin_api.ClusterInfo(
            kubeconfig=self.kubeconfig,
            context=CONTEXT,
            node_ip=self._node_ip(),
            app_url=plugin_api.node_port_url("127.0.0.1", self._node_port),
        )

    def down(self) -> None:
        self._run("down.sh", what="stopping the local cluster")

    def wipe(self) -> None:
        """Stop the cluster and remove its state (``scripts/wipe.sh``), keeping the builds."""
        self._run("wipe.sh", what="wiping the local cluster")

    def status(self) -> dict[str, str]:
        result = subprocess.run(
            ["bash", str(SCRIPTS / "status.sh")], capture_output=True, text=True, check=False
        )
        states: dict[str, str] = {}
        for line in result.stdout.splitlines():
            component, _, state = line.strip().partition(" ")
            if component:
                states[component] = state.strip()
        return states

    def docker_env(self) -> dict[str, str]:
        # Images are built by the machine's own Docker engine and then copied into the
        # cluster (load_images), so builds need no special daemon: keep the user's.
        host = os.environ.get("DOCKER_HOST", "unix:///run/docker.sock")
        return {"DOCKER_HOST": host}

    def load_images(self, images: list[str]) -> None:
        if images:
            self._run(
                "load-image.sh", *images, what=f"loading {', '.join(images)} into the cluster"
            )

    def _healthy(self) -> bool:
        states = self.status()
        wanted = (
            "containerd",
            "etcd",
            *COMPONENTS,
            "provisioner",
            "image-registry",
            "node",
            "coredns",
        )
        return all(states.get(name, "").startswith("running") for name in wanted)

    def _node_ip(self) -> str:
        path = cache_dir() / "cluster" / "pki" / "node-ip"
        try:
            return path.read_text().strip()
        except OSError as error:
            raise plugin_api.PermanentError(
                f"the local cluster has no recorded node IP ({path}: {error.strerror})",
                hint=f"run {SCRIPTS / 'up.sh'} and read its output",
            ) from error

    def _run(self, script: str, *args: str, what: str) -> None:
        command = ["bash", str(SCRIPTS / script), *args]
        capture = not self._output_to_terminal
        result = subprocess.run(command, capture_output=capture, text=True, check=False)
        output = ((result.stdout or "") + (result.stderr or ""))[-2000:]
        if result.returncode != 0:
            logs = self.log_directory()
            detail = f": {output}" if output else ""
            raise plugin_api.PermanentError(
                f"{what} failed ({script} exited {result.returncode}){detail}",
                hint=f"component logs are in {logs}; "
                f"`{SCRIPTS / 'status.sh'}` shows which part is down",
            )
