"""The real stack, for the groups that need it: clones, edits, the cluster, the release.

Who calls it: :mod:`bench.images`, :mod:`bench.inner_loop`, :mod:`bench.load`,
:mod:`bench.bootstrap`. Edits are made in clones of this repository, never in its work
tree. While a group deploys from a clone, the clone owns the release: a daemon of the
main checkout is stopped first, and afterwards the main checkout's state is deployed
again with ``lumina-reconcile once`` and its daemon restarted, as ``nox -s bootstrap``
starts it.
"""

from __future__ import annotations

import json
import pathlib
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench import measuring
from reconciler import settings
from reconciler.building import buildkit, builds
from reconciler.cli import wiring
from reconciler.cluster import kube, providers
from reconciler.daemon import locking

SERVICES = ("backend", "chatbot", "frontend")
#: per service: a source file the image is built from, and its line-comment marker
EDITS = {
    "backend": ("services/backend/app/main.py", "#"),
    "chatbot": ("services/chatbot/app/main.py", "#"),
    "frontend": ("services/frontend/lib/errors.ts", "//"),
}
FRONTEND_URL = "http://127.0.0.1:30080"
#: RUN steps on the host's network: this machine's engine may lose its default bridge
#: (docker0) while the cluster's networking is set up, and the network a RUN step uses
#: changes no layer and no timing that matters here.
BUILD_FLAGS = ("--network", "host")


def docker_build() -> tuple[list[str], dict[str, str]]:
    """The CLI command (and its environment) a user builds with by hand: through BuildKit,
    as the reconciler finds it, since the frontend's cache mounts need it."""
    chosen = builds.builder(builds.connect({}))
    if not isinstance(chosen, buildkit.Cli):
        raise measuring.NotRunError(
            f"no BuildKit here ({chosen.reason}); the frontend's Dockerfile needs it "
            "(a test machine gets buildx from tools/install-buildx.sh)"
        )
    return list(chosen.argv), dict(chosen.env)


def executable() -> str:
    return shutil.which("lumina-reconcile") or str(
        pathlib.Path(sys.executable).with_name("lumina-reconcile")
    )


def clone(ctx: measuring.Context, name: str) -> pathlib.Path:
    """A clone of this repository's HEAD, with the local (git-ignored) secrets file."""
    path = ctx.work / name
    measuring.run(["git", "clone", "-q", "--shared", str(ctx.repo), str(path)])
    measuring.git(path, "config", "user.email", "bench@lumina.invalid")
    measuring.git(path, "config", "user.name", "lumina bench")
    measuring.git(path, "checkout", "-q", "-B", "main")
    secrets_file = ctx.repo / "config" / "secrets.env"
    if secrets_file.exists():
        # The same generated JWT key as the main checkout, so users stay signed in.
        target = path / "config" / "secrets.env"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(secrets_file, target)
        target.chmod(0o600)
    return path


#: makes every edit of this run new content: an edit repeated from an earlier run would
#: find its image already built and measure no build at all
RUN_ID = secrets.token_hex(4)


def edit(repo: pathlib.Path, service: str, marker: str) -> str:
    """A one-line source change: appends a comment line; returns the edited path."""
    relative, comment = EDITS[service]
    path = repo / relative
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{comment} bench edit {RUN_ID} {marker}\n")
    return relative


def docker_ready() -> None:
    measuring.require("docker")
    done = measuring.run(["docker", "info", "--format", "{{.ServerVersion}}"], check=False)
    if done.returncode != 0:
        raise measuring.NotRunError("no Docker engine answers (run tools/ensure-docker.sh)")


def cluster(config: settings.Settings) -> tuple[providers.ClusterProvider, providers.ClusterInfo]:
    """The running cluster, or NotRunError naming what is down. Never starts one."""
    provider = wiring.choose_provider(config)
    states = provider.status()
    down = [name for name, text in states.items() if not text.startswith("running")]
    if not states or down:
        raise measuring.NotRunError(
            "the cluster is not up (" + ", ".join(down or ["no status"]) + " not running); "
            "run nox -s bootstrap first"
        )
    return provider, provider.ensure_up()


def connect(info: providers.ClusterInfo) -> kube.Kube:
    return kube.Kube(info.kubeconfig, info.context)


def running_image(connection: kube.Kube, namespace: str, service: str) -> dict[str, Any]:
    """The images of the service's Ready, not-terminating pods."""
    images = []
    for pod in connection.list(
        "v1", "Pod", namespace, label_selector=f"app.kubernetes.io/name={service}"
    ):
        if pod["metadata"].get("deletionTimestamp"):
            continue
        conditions = pod.get("status", {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if ready:
            images += [c["image"] for c in pod["spec"]["containers"]]
    return {"ready_images": images}


def serves_tag(connection: kube.Kube, namespace: str, service: str, tag: str) -> bool:
    return any(
        image.endswith(f":{tag}")
        for image in running_image(connection, namespace, service)["ready_images"]
    )


def last_cycle(repo: pathlib.Path) -> dict[str, Any]:
    document = json.loads((repo / ".lumina" / "state.json").read_text(encoding="utf-8"))
    history = document.get("history") or [{}]
    return dict(history[-1])


def deployed_tags(repo: pathlib.Path) -> dict[str, str]:
    document = json.loads((repo / ".lumina" / "state.json").read_text(encoding="utf-8"))
    return {name: image["tag"] for name, image in document.get("services", {}).items()}


def reconcile(repo: pathlib.Path, *args: str, timeout: float = 1800) -> tuple[float, int, str]:
    """``lumina-reconcile ARGS --repo REPO``: wall seconds, exit code, last output line."""
    with measuring.stopwatch() as elapsed:
        done = measuring.run(
            [executable(), *args, "--repo", str(repo)], timeout=timeout, check=False
        )
    lines = (done.stdout + done.stderr).strip().splitlines()
    return elapsed(), done.returncode, lines[-1] if lines else ""


def reconcile_until_done(
    ctx: measuring.Context, repo: pathlib.Path, *args: str, attempts: int = 3
) -> tuple[float, int, str]:
    """``reconcile`` again after a failure (another user of a shared cluster, say)."""
    for attempt in range(attempts):
        seconds, code, line = reconcile(repo, *args)
        if code == 0:
            break
        ctx.say(f"[yellow]lumina-reconcile {' '.join(args)} exited {code}: {line}[/]")
        if attempt + 1 < attempts:
            time.sleep(15)
    return seconds, code, line


def _daemon_pid(repo: pathlib.Path) -> int | None:
    config = settings.load_settings(repo)
    return locking.holder(config.repo_path(config.state_dir))


def start_daemon(repo: pathlib.Path) -> int:
    log_path = repo / ".lumina" / "daemon.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log_file:
        daemon = subprocess.Popen(
            [executable(), "run"],
            cwd=repo,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return daemon.pid


@contextmanager
def borrowed_release(ctx: measuring.Context) -> Iterator[None]:
    """Let a clone own the release; then hand it back to the main checkout."""
    was_running = _daemon_pid(ctx.repo) is not None
    if was_running:
        ctx.say("stopping the main checkout's daemon while the bench owns the release")
        measuring.run([executable(), "stop", "--repo", str(ctx.repo)], timeout=300)
    try:
        yield
    finally:
        ctx.say("giving the release back to the main checkout (lumina-reconcile once)")
        handed = measuring.run(
            [executable(), "once", "--repo", str(ctx.repo)], timeout=1800, check=False
        )
        if handed.returncode != 0:
            ctx.say(f"[red]once on the main checkout exited {handed.returncode}[/]")
        if was_running:
            time.sleep(0.5)
            ctx.say(f"restarted the main checkout's daemon (PID {start_daemon(ctx.repo)})")
