"""``lumina-reconcile logs -f`` on the real cluster: one stream across a backend rollout.

The clone (fixture ``workspace``) owns the release; ``logs backend -f`` runs while a
backend commit is deployed with ``once --mode commit``. The backend's strategy is
Recreate, so the old pod stops before the new one starts: the stream must show the old
pod's lines up to its shutdown, then the new pod's from its start, every line with the
service's prefix.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import threading
import uuid

import environments
from conftest import commit, reconcile, wait_for

from reconciler.cluster import kube

BACKEND_MAIN = "services/backend/app/main.py"
PREFIX = "backend | "
NAMESPACE = environments.for_module(__file__).namespace


def _backend_pods(cluster: kube.Kube) -> set[str]:
    return {
        str(pod["metadata"]["name"])
        for pod in cluster.list(
            "v1", "Pod", NAMESPACE, label_selector="app.kubernetes.io/name=backend"
        )
        if not pod["metadata"].get("deletionTimestamp")
    }


def _header(lines: list[str], pod: str) -> int:
    """Index of the line that opens ``pod``'s stream (-1 when there is none yet)."""
    return next(
        (index for index, line in enumerate(lines) if line.startswith(f"{PREFIX}-- pod {pod} ")),
        -1,
    )


def test_logs_follow_the_backend_across_a_rollout(
    workspace: pathlib.Path, cluster: kube.Kube
) -> None:
    code = reconcile(workspace, "once", "--mode", "commit", check=False)
    assert code.returncode == 0, code.stdout + code.stderr  # the clone owns the release
    (old_pod,) = _backend_pods(cluster)
    argv = ["logs", "backend", "-f", "--tail", "5", "--repo", str(workspace)]
    follower = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.rstrip("\n") for line in follower.stdout or ()),
        daemon=True,
        name="logs-reader",
    )
    reader.start()
    try:
        wait_for(lambda: _header(lines, old_pod) >= 0, 60, f"the stream of {old_pod}")
        path = workspace / BACKEND_MAIN
        path.write_text(path.read_text() + f"\n# e2e: a rollout under `logs -f` {uuid.uuid4()}\n")
        commit(workspace, "backend: a change rolled out while logs are followed")
        once = reconcile(workspace, "once", "--mode", "commit", check=False)
        assert once.returncode == 0, once.stdout + once.stderr
        (new_pod,) = _backend_pods(cluster)
        assert new_pod != old_pod

        def new_pod_started() -> bool:
            start = _header(lines, new_pod)
            return start >= 0 and any(
                "Application startup complete" in line for line in lines[start:]
            )

        wait_for(new_pod_started, 120, f"{new_pod}'s startup in the stream")
        assert follower.poll() is None, "logs -f ended by itself:\n" + "\n".join(lines)
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            follower.wait(timeout=30)
        except subprocess.TimeoutExpired:
            follower.kill()
            follower.wait()
        reader.join(timeout=30)
    said = "\n".join(lines)
    old_at, new_at = _header(lines, old_pod), _header(lines, new_pod)
    assert 0 <= old_at < new_at, said
    old_lines = lines[old_at + 1 : new_at]
    new_lines = lines[new_at + 1 :]
    # In order: the old pod to its shutdown (uvicorn on SIGTERM), then the new pod's start.
    assert any("Shutting down" in line for line in old_lines), said
    assert any("Application startup complete" in line for line in new_lines), said
    assert not any("Application startup complete" in line for line in old_lines[-3:]), said
    # Every line carries the service's prefix (colour is off in a pipe, as rich decides).
    assert all(line.startswith(PREFIX) for line in lines[old_at:]), said
    assert "Traceback" not in said, said
