"""The reconcile loop on the real cluster: only what changed is built, failures roll back.

Every test commits in a clone of this repository (fixture ``workspace``: this module's
own environment, installed from nothing) and runs ``lumina-reconcile once --mode
commit`` there, so each change is exactly one commit.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import environments
import httpx
import pytest
from conftest import (
    commit,
    helm_revision,
    helm_status,
    json_of,
    kubectl,
    pod_uids,
    reconcile,
    run,
    wait_for,
)

from reconciler.cluster import kube
from reconciler.releasing import helm

BACKEND_MAIN = "services/backend/app/main.py"
ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace


def _once(repo: pathlib.Path) -> tuple[int, str]:
    result = reconcile(repo, "once", "--mode", "commit", check=False)
    return result.returncode, result.stdout + result.stderr


def _daemon_env(**extra: str) -> dict[str, str]:
    """A daemon of its own status port: another may hold the default one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {**os.environ, "LUMINA_STATUS_PORT": str(port), **extra}


def _says(output: str, *outcomes: str) -> bool:
    """Whether ``once`` reported one of ``outcomes`` (providers may print before it)."""
    return any(
        line.startswith(f"{outcome}:") for line in output.splitlines() for outcome in outcomes
    )


def _backend_image(helm_env: dict[str, str], revision: int) -> str:
    """The backend image a release revision deploys (from Helm's record of it)."""
    values = run(
        helm_env["helm"],
        "--kubeconfig",
        helm_env["kubeconfig"],
        "--kube-context",
        helm_env["context"],
        "get",
        "values",
        "lumina-todo",
        "-n",
        NAMESPACE,
        "--revision",
        str(revision),
        "-o",
        "json",
    ).stdout
    image = json.loads(values)["backend"]["image"]
    return f"{image['repository']}:{image['tag']}"


def _last_cycle(repo: pathlib.Path) -> dict:
    status = json.loads(reconcile(repo, "status", "--json").stdout)
    return status["last_cycle"]


@pytest.fixture(scope="module")
def adopted(workspace: pathlib.Path, helm_env: dict[str, str]) -> int:
    """The clone adopts the live release: it converges to the clone's HEAD, and a second
    cycle then finds nothing to do."""
    code, output = _once(workspace)
    assert code == 0, output
    revision = helm_revision(helm_env, NAMESPACE)
    code, output = _once(workspace)
    assert code == 0 and _says(output, "nothing-to-do"), output
    assert helm_revision(helm_env, NAMESPACE) == revision
    return revision


def test_backend_commit_rebuilds_only_the_backend(
    workspace: pathlib.Path,
    adopted: int,
    cluster: kube.Kube,
    helm_env: dict[str, str],
    user: httpx.Client,
) -> None:
    todo = json_of(user.post("/api/todos", json={"title": "survives the upgrade"}))
    frontend, chatbot = (
        pod_uids(cluster, "frontend", NAMESPACE),
        pod_uids(cluster, "chatbot", NAMESPACE),
    )
    backend = pod_uids(cluster, "backend", NAMESPACE)
    path = workspace / BACKEND_MAIN
    # A change no earlier run made, so the image is really built (not found and reused).
    path.write_text(path.read_text() + f"\n# e2e: a backend-only change {uuid.uuid4()}\n")
    commit(workspace, "backend: a one-line change")

    code, output = _once(workspace)
    assert code == 0, output
    cycle = _last_cycle(workspace)
    assert cycle["outcome"] == "converged"
    assert cycle["built"] == ["backend"]
    assert helm_revision(helm_env, NAMESPACE) == adopted + 1
    assert pod_uids(cluster, "frontend", NAMESPACE) == frontend
    assert pod_uids(cluster, "chatbot", NAMESPACE) == chatbot
    assert pod_uids(cluster, "backend", NAMESPACE).isdisjoint(backend)
    answers: list[int] = []

    def todo_served() -> bool:
        answers.append(user.get(f"/api/todos/{todo['id']}").status_code)
        return answers[-1] == 200

    try:
        wait_for(todo_served, 60, "the todo after the upgrade")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last answers: {answers[-5:]}") from exc
    assert json_of(user.get(f"/api/todos/{todo['id']}"))["title"] == "survives the upgrade"


def test_docs_only_commit_builds_and_upgrades_nothing(
    workspace: pathlib.Path, helm_env: dict[str, str]
) -> None:
    before = helm_revision(helm_env, NAMESPACE)
    (workspace / "README.md").write_text((workspace / "README.md").read_text() + "\nMore docs.\n")
    commit(workspace, "docs only")
    code, output = _once(workspace)
    assert code == 0, output
    assert _says(output, "nothing-to-do"), output
    assert helm_revision(helm_env, NAMESPACE) == before


def test_chart_only_change_upgrades_without_builds(
    workspace: pathlib.Path, helm_env: dict[str, str]
) -> None:
    before = helm_revision(helm_env, NAMESPACE)
    values = workspace / "helm/lumina-todo/values.yaml"
    values.write_text(values.read_text() + "\n# e2e: a chart-only change\n")
    commit(workspace, "chart only")
    code, output = _once(workspace)
    assert code == 0, output
    cycle = _last_cycle(workspace)
    assert cycle["outcome"] == "converged" and cycle["built"] == []
    assert helm_revision(helm_env, NAMESPACE) == before + 1


def test_crashing_backend_is_rolled_back_fast_and_explained(
    workspace: pathlib.Path,
    helm_env: dict[str, str],
    user: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With trial starts off (a trial refuses this image before any upgrade, see
    test_8_data_safety), the rollout itself fails: the rollback path, for failures a
    trial on a copy cannot catch."""
    monkeypatch.setenv("LUMINA_TRIAL_STARTS", "false")
    todo = json_of(user.post("/api/todos", json={"title": "still served during a bad deploy"}))
    # The image builds (its build step imports the app), the container exits at start.
    path = workspace / "services/backend/Dockerfile"
    good = path.read_text()
    exit_now = "import sys; sys.exit('e2e: the backend refuses to start')"
    crash = f'["/opt/venv/bin/python", "-c", "{exit_now}"]'
    path.write_text(
        good.replace(
            'CMD ["/opt/venv/bin/uvicorn"', f'CMD {crash}\n# was: CMD ["/opt/venv/bin/uvicorn"', 1
        )
    )
    assert "e2e: the backend refuses to start" in path.read_text()
    commit(workspace, "backend: crash on start")
    before = helm_revision(helm_env, NAMESPACE)
    served_before = _backend_image(helm_env, before)
    timeout = float(os.environ.get("LUMINA_HELM_TIMEOUT_SECONDS", "300"))
    assert timeout >= 300, "the claim is about Helm's default 300 s timeout"
    started = time.monotonic()
    code, output = _once(workspace)
    took = time.monotonic() - started
    assert code == 1, output
    assert _says(output, "rolled-back"), output
    assert "CrashLoopBackOff" in output
    assert "e2e: the backend refuses to start" in output
    # What ended the wait: our watch saw the crash, long before any timeout could fire.
    cycle = _last_cycle(workspace)
    assert cycle["rollout"]["ended_by"] == "CrashLoopBackOff", cycle
    assert cycle["rollout"]["seconds"] < timeout / 2, cycle
    assert took < timeout, f"the cycle took {took:.0f}s: it sat out a {timeout:.0f}s timeout"
    assert cycle["states"][-2:] == ["rollout-failed", "rolled-back"], cycle
    # Deployed at the previous revision's content; no helm left running; nothing pending.
    assert helm_status(helm_env, NAMESPACE) == "deployed"
    after = helm_revision(helm_env, NAMESPACE)
    assert after == before + 2, (before, after)  # the upgrade, then its rollback
    assert _backend_image(helm_env, after) == served_before
    assert not helm.helm_writers("lumina-todo", NAMESPACE)
    # Recreate leaves the backend without a pod while it rolls back: bounded patience.
    wait_for(
        lambda: user.get(f"/api/todos/{todo['id']}").status_code == 200,
        120,
        "the todo after the rollback",
    )
    served = json_of(user.get(f"/api/todos/{todo['id']}"))
    assert served["title"] == "still served during a bad deploy"

    diagnosis = reconcile(workspace, "diagnose", "backend").stdout
    assert "CrashLoopBackOff" in diagnosis and "e2e: the backend refuses to start" in diagnosis

    # The same failing inputs are not retried in a loop.
    again, output = _once(workspace)
    assert again == 1 and _says(output, "skipped-known-failure"), output

    path.write_text(good)
    commit(workspace, "backend: fixed")
    code, output = _once(workspace)
    assert code == 0, output


def test_dockerfile_syntax_error_builds_nothing_and_deploys_nothing(
    workspace: pathlib.Path, helm_env: dict[str, str]
) -> None:
    before = helm_revision(helm_env, NAMESPACE)
    dockerfile = workspace / "services/chatbot/Dockerfile"
    good = dockerfile.read_text()
    dockerfile.write_text("FROMM python:3.13-slim\n" + good)
    commit(workspace, "chatbot: broken Dockerfile")
    code, output = _once(workspace)
    assert code == 1 and _says(output, "build-failed"), output
    assert "chatbot" in output
    assert helm_revision(helm_env, NAMESPACE) == before
    dockerfile.write_text(good)
    commit(workspace, "chatbot: Dockerfile fixed")
    code, output = _once(workspace)
    assert code == 0, output


def test_second_daemon_refuses_to_start(workspace: pathlib.Path) -> None:
    first = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(workspace), "--mode", "commit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_daemon_env(),
    )
    try:
        wait_for(
            lambda: (
                json.loads(reconcile(workspace, "status", "--json").stdout)["daemon"]["pid"]
                == first.pid
            ),
            60,
            "the first daemon to take the lock",
        )
        second = reconcile(workspace, "run", "--mode", "commit", check=False)
        assert second.returncode == 2
        assert f"PID {first.pid}" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 0


def test_kill_during_an_upgrade_recovers_without_a_stuck_release(
    workspace: pathlib.Path, helm_env: dict[str, str]
) -> None:
    path = workspace / BACKEND_MAIN
    path.write_text(path.read_text() + "\n# e2e: change for the kill test\n")
    commit(workspace, "backend: change deployed by a daemon killed mid-upgrade")
    before = helm_revision(helm_env, NAMESPACE)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(workspace), "--mode", "commit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_daemon_env(),
    )
    assert daemon.stdout is not None
    built = threading.Event()
    seen: list[str] = []

    def read() -> None:
        for line in daemon.stdout or ():
            seen.append(line)
            if "built lumina/backend" in line or "reused lumina/backend" in line:
                built.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # Bounded: a daemon that never builds must fail the test, not hang it.
        deadline = time.monotonic() + 600
        while not built.wait(1) and daemon.poll() is None and time.monotonic() < deadline:
            pass
        assert built.is_set(), "the daemon never built the backend:\n" + "".join(seen)[-3000:]
        time.sleep(2)  # the upgrade has started: kill -9 now
    finally:
        daemon.kill()
        daemon.wait()
        reader.join(timeout=30)
    code, output = _once(workspace)
    assert code == 0, output
    assert helm_status(helm_env, NAMESPACE) == "deployed"
    history = run(
        helm_env["helm"],
        "--kubeconfig",
        helm_env["kubeconfig"],
        "--kube-context",
        helm_env["context"],
        "history",
        "lumina-todo",
        "-n",
        NAMESPACE,
        "-o",
        "json",
    ).stdout
    statuses = [entry["status"] for entry in json.loads(history)]
    assert not any(status.startswith("pending") for status in statuses)
    # One upgrade for the change (plus at most one rollback if the kill left it failed).
    assert helm_revision(helm_env, NAMESPACE) - before <= 3
    # The image built before the kill is reused, never built again.
    assert _says(output, "converged", "nothing-to-do"), output
    if _says(output, "converged"):
        assert _last_cycle(workspace)["built"] == []


def test_manual_changes_are_reported_as_drift_and_corrected(
    workspace: pathlib.Path, cluster: kube.Kube, helm_env: dict[str, str]
) -> None:
    lumina = [*kubectl(helm_env), "-n", NAMESPACE]
    run(*lumina, "scale", "deployment/frontend", "--replicas=2")
    run(*lumina, "set", "image", "deployment/chatbot", "chatbot=lumina/chatbot:set-by-hand")
    report = reconcile(workspace, "drift", "--json", check=False)
    assert report.returncode == 1, report.stdout + report.stderr
    fields = {(item["service"], item["field"]) for item in json.loads(report.stdout)["drift"]}
    assert ("frontend", "spec.replicas") in fields
    assert ("chatbot", "container chatbot image") in fields

    before = helm_revision(helm_env, NAMESPACE)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(workspace), "--mode", "commit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_daemon_env(LUMINA_DRIFT="correct", LUMINA_DRIFT_INTERVAL_SECONDS="3"),
    )
    try:

        def corrected() -> bool:
            frontend = cluster.get("apps/v1", "Deployment", NAMESPACE, "frontend")
            chatbot = cluster.get("apps/v1", "Deployment", NAMESPACE, "chatbot")
            image = chatbot["spec"]["template"]["spec"]["containers"][0]["image"] if chatbot else ""
            return (
                frontend is not None
                and frontend["spec"]["replicas"] == 1
                and "set-by-hand" not in image
            )

        wait_for(corrected, 180, "the daemon to revert the hand-made scale and image")
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, output
    assert "drift: frontend" in output
    assert helm_revision(helm_env, NAMESPACE) == before + 1
    assert reconcile(workspace, "drift", check=False).returncode == 0


def test_a_damaged_state_file_does_not_stop_the_daemon_and_the_next_change_deploys(
    workspace: pathlib.Path, helm_env: dict[str, str]
) -> None:
    state_file = workspace / ".lumina" / "state.json"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "run", "--repo", str(workspace), "--mode", "commit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_daemon_env(),
    )
    seen: list[str] = []
    reader = threading.Thread(
        target=lambda: seen.extend(daemon.stdout or ()), daemon=True, name="daemon-log"
    )
    reader.start()

    def said(words: str, timeout: float) -> None:
        wait_for(
            lambda: any(words in line for line in seen) or daemon.poll() is not None, timeout, words
        )
        assert daemon.poll() is None, "the daemon died:\n" + "".join(seen)[-4000:]
        assert any(words in line for line in seen), "".join(seen)[-4000:]

    try:
        said("cycle 1:", 600)
        damaged = state_file.read_text()[: len(state_file.read_text()) // 2]
        state_file.write_text(damaged)
        path = workspace / BACKEND_MAIN
        path.write_text(path.read_text() + "\n# e2e: deployed after the state file broke\n")
        commit(workspace, "backend: change after a damaged state file")
        said("cycle 2: converged", 900)
        kept = list(state_file.parent.glob("state.json.damaged-*"))
        assert [item.read_text() for item in kept] == [damaged]
        assert any("kept it as state.json.damaged-" in line for line in seen), "".join(seen)
        status = json.loads(reconcile(workspace, "status", "--json").stdout)
        assert status["last_cycle"]["outcome"] == "converged", status
        assert status["state_problem"] is None, status
        assert status["services"]["backend"]["tag"] in _backend_image(
            helm_env, helm_revision(helm_env, NAMESPACE)
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=300)
        reader.join(timeout=30)
    assert code == 0, "".join(seen)[-4000:]
    assert not any("Traceback" in line for line in seen), "".join(seen)[-4000:]


def test_an_image_the_node_lost_is_delivered_again_not_rolled_back(
    workspace: pathlib.Path, helm_env: dict[str, str], cluster: kube.Kube, user: httpx.Client
) -> None:
    """The release is right but the node no longer has its backend image (pruned, or a
    new node): the next cycle loads it again and the backend serves, at the same
    revision — no rollback of what the repository asks for."""
    code, output = _once(workspace)
    assert code == 0, output
    revision = helm_revision(helm_env, NAMESPACE)
    image = _backend_image(helm_env, revision)
    socket = pathlib.Path.home() / ".cache/lumina/cluster/containerd/containerd.sock"
    ctr = ["ctr", "--address", str(socket), "-n", "k8s.io"]
    run(*ctr, "images", "rm", f"docker.io/{image}")
    run(
        *kubectl(helm_env), "-n", NAMESPACE, "delete", "pod", "-l", "app.kubernetes.io/name=backend"
    )
    wait_for(
        lambda: (
            "ImagePull" in run(*kubectl(helm_env), "-n", NAMESPACE, "get", "pods").stdout
            or "ErrImage" in run(*kubectl(helm_env), "-n", NAMESPACE, "get", "pods").stdout
        ),
        120,
        "the new backend pod to miss its image",
    )
    # `first` makes the cycle read the release: it runs the repository's state, so
    # only verifying it reveals the missing image.
    state_file = workspace / ".lumina" / "state.json"
    state_file.unlink()
    code, output = _once(workspace)
    assert code == 0, output
    assert "the node lacks the image of backend" in output, output
    assert helm_revision(helm_env, NAMESPACE) == revision, "nothing was upgraded or rolled back"
    assert helm_status(helm_env, NAMESPACE) == "deployed"
    cycle = _last_cycle(workspace)
    assert "rollout-failed" not in cycle["states"], cycle
    assert user.get("/api/todos").status_code == 200
