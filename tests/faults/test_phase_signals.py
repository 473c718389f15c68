"""SIGTERM and SIGKILL landed in each phase of a cycle, then the daemon restarted (issue 23).

Each case starts ``reconciler run --mode commit -v`` on the module's clone with a change
that reaches the phase, signals the daemon the moment the phase's first log line
appears, and records which phase was running when the signal landed: the phase's own
line was printed and the line that ends it was not, before the daemon said it was
stopping (what a stop lets finish, a hook in its thread or a remedy's revert and
rollback, may log its end after that). Then the daemon is started again
until its first cycle settles, stopped, and the app is checked as a user and an
operator would check it:

- it serves, at the revision before the change or the one of the change, every
  Deployment with the replicas its release asks for, all of them ready;
- ``state.json`` names the revision Helm has and the backend image the cluster runs;
- no trial or revert pod, no extra pod, no ``pending-*`` revision, no helm process;
- a todo created through the API before the signal is still there.

Phases ``revert`` and ``rollback`` need a failing change: a backend that migrates its
database and then exits when it runs live (``tests/e2e/test_8_data_safety.py``).

Marked ``phase_table``: 18 cases of a few minutes each, run by ``nox -s phase-faults``,
which prints the table; CI's e2e session leaves them out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import lumina_stack
import pytest
import yaml

from reconciler.releasing import helm as releasing

pytestmark = pytest.mark.phase_table

DOCKERFILE = "services/backend/Dockerfile"
MIGRATION = "services/backend/app/migrations/versions/0003_faults.py"
UVICORN_CMD = 'CMD ["/opt/venv/bin/uvicorn"'
TRIAL_LABELS = ("lumina.dev/trial", "lumina.dev/revert")
STOPPING = "stopping: abandoning the running cycle"
SETTLED = ("converged", "nothing-to-do", "rolled-back", "skipped-known-failure", "trial-failed")


@dataclasses.dataclass(frozen=True)
class Phase:
    name: str
    #: the line that says the phase has begun
    starts: str
    #: a line only printed once the phase is over
    ends: tuple[str, ...]
    failing: bool = False
    env: tuple[tuple[str, str], ...] = ()


PHASES = [
    Phase("build", "building lumina/backend", ("built lumina/backend",)),
    Phase("deliver", "-> deliver", ("out-of-sync:",)),
    Phase(
        "backup",
        "pre-upgrade backend: running its hook",
        ("pre-upgrade backend: backed up", "pre-upgrade backend: not backed up"),
    ),
    Phase("trial", "trial start of the new backend", ("trial start backend:",)),
    Phase("helm apply", "applying the release with helm", ("watching the rollout",)),
    Phase("rollout wait", "watching the rollout", ("ready in", "rollout of revision")),
    Phase(
        "revert",
        "reverting backend's data",
        ("restored the database", "database kept as it was", "reverting backend's data failed"),
        failing=True,
    ),
    Phase("rollback", "helm rollback to revision", ("cycle 1:",), failing=True),
    Phase("record", "-> record", ("cycle 1:",)),
]
SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGKILL": signal.SIGKILL}

#: (phase, signal, landed in, what serves, what the state says, left over)
TABLE: list[tuple[str, ...]] = []


def _start(workspace: pathlib.Path, env: dict[str, str]) -> subprocess.Popen[str]:
    merged = {**os.environ, **lumina_stack.GIT_ENV, **env}
    merged["LUMINA_STATUS_PORT"] = str(lumina_stack.free_port())
    command = [sys.executable, "-m", "reconciler", "run", "--repo", str(workspace)]
    return subprocess.Popen(
        [*command, "--mode", "commit", "-v"],
        cwd=workspace,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=merged,
    )


def _change(workspace: pathlib.Path, phase: Phase) -> None:
    if not phase.failing:
        lumina_stack.change_backend(workspace, f"signalled in {phase.name}")
        return
    (workspace / MIGRATION).write_text(
        '"""faults: a new column."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        'revision = "0003"\ndown_revision = "0002"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n"
        '    op.add_column("todos", sa.Column("faults_note", sa.String(20), nullable=True))\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_column("todos", "faults_note")\n'
    )
    fails_live = (
        "import os, sys; from app import database, migrating; "
        "url = os.environ['DATABASE_URL']; "
        "'/trial/' in url or (migrating.upgrade(database.Database(url)), "
        "sys.exit('faults: migrated, then failed live')); "
        "os.execv('/opt/venv/bin/uvicorn', ['uvicorn', 'app.main:app', '--host', '0.0.0.0', "
        "'--port', '8000'])"
    )
    path = workspace / DOCKERFILE
    command = f'CMD ["/opt/venv/bin/python", "-c", "{fails_live}"]'
    # Each case's failing change is its own: inputs that failed before are not tried again.
    case = f"# faults case: {phase.name} {time.time_ns()}\n"
    failing = path.read_text().replace(UVICORN_CMD, f"{command}\n# was: {UVICORN_CMD}", 1)
    path.write_text(failing + case)
    lumina_stack.commit(workspace, f"backend: migrates, then fails live ({phase.name})")


def _restore(workspace: pathlib.Path, dockerfile: str) -> None:
    """The good backend back, so the next case starts from a change that can succeed."""
    (workspace / DOCKERFILE).write_text(dockerfile)
    (workspace / MIGRATION).unlink(missing_ok=True)
    if lumina_stack.run("git", "status", "--porcelain", cwd=workspace).stdout.strip():
        lumina_stack.commit(workspace, "backend: as it was")


def _restart(workspace: pathlib.Path) -> str:
    """The daemon again, until a cycle settles; stopped politely; its whole log."""
    process = _start(workspace, {})
    log = lumina_stack.LogTail(process)
    try:
        log.wait_for(
            lambda line: " cycle " in line and any(f": {o} " in line for o in SETTLED),
            900,
            "of a settled cycle",
        )
    finally:
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=400)
        log.join()
    assert code == 0, log.text()[-4000:]
    return log.text()


def _kube_json(*args: str) -> dict[str, Any]:
    namespace = lumina_stack.current().namespace
    return dict(json.loads(lumina_stack.kubectl("-n", namespace, *args, "-o", "json").stdout))


def _wanted_replicas() -> dict[str, int]:
    """Per Deployment, the replicas the release's current revision asks for."""
    namespace = lumina_stack.current().namespace
    manifest = lumina_stack.helm("get", "manifest", lumina_stack.RELEASE, "-n", namespace).stdout
    return {
        str(obj["metadata"]["name"]): int(obj["spec"].get("replicas", 1))
        for obj in yaml.safe_load_all(manifest)
        if obj and obj.get("kind") == "Deployment"
    }


def _backend_tag() -> str:
    deployment = _kube_json("get", "deployment", "backend")
    image = str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])
    return image.rpartition(":")[2]


def _settled_pods(wanted: dict[str, int]) -> list[str]:
    """What is left over once terminating pods are gone: trial/revert pods, extra pods."""
    left: list[str] = []

    def settled() -> bool:
        left.clear()
        pods = _kube_json("get", "pods")["items"]
        counts: dict[str, int] = {}
        for pod in pods:
            labels = pod["metadata"].get("labels") or {}
            name = pod["metadata"]["name"]
            if any(label in labels for label in TRIAL_LABELS):
                left.append(f"trial/revert pod {name}")
                continue
            owner = labels.get("app.kubernetes.io/name", "?")
            counts[owner] = counts.get(owner, 0) + 1
        left.extend(
            f"{counts.get(name, 0)} {name} pods for {replicas} replicas"
            for name, replicas in wanted.items()
            if counts.get(name, 0) != replicas
        )
        return not left

    with contextlib.suppress(AssertionError):  # what is left is the answer, not an error
        lumina_stack.wait_for(settled, 120, "no pod left over")
    return list(left)


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, environment: object
) -> Iterator[tuple[pathlib.Path, httpx.Client]]:
    """One clone and one signed-in user for the whole table: each case leaves the
    release settled, so the next starts where it ended."""
    workspace = lumina_stack.clone(tmp_path_factory.mktemp("phases"))
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    user = lumina_stack.signed_in(f"phases-{time.time_ns()}@example.com")
    yield workspace, user
    user.close()


@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("phase", PHASES, ids=[p.name.replace(" ", "-") for p in PHASES])
def test_a_signal_in_a_phase_leaves_the_app_serving_and_the_record_true(
    shared: tuple[pathlib.Path, httpx.Client], phase: Phase, sig: str
) -> None:
    workspace, user = shared
    before = lumina_stack.helm_revision()
    before_tag = _backend_tag()
    dockerfile = (workspace / DOCKERFILE).read_text()
    created = user.post("/api/todos", json={"title": f"acknowledged before {sig} in {phase.name}"})
    assert created.status_code == 201, created.text
    todo = created.json()
    lumina_stack.count("writes acknowledged")
    _change(workspace, phase)
    process = _start(workspace, dict(phase.env))
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    try:
        log.wait_for(lambda line: phase.starts in line, 900, repr(phase.starts))
    finally:
        process.send_signal(SIGNALS[sig])
        code = process.wait(timeout=400)
        log.join()
    interrupted = log.text()
    if phase.failing:
        _restore(workspace, dockerfile)
    # What the daemon printed before the signal landed: a SIGTERM'd daemon says so; work
    # it lets finish (a hook in its thread, the remedy's revert and rollback) logs after.
    stopped_at = interrupted.find(STOPPING)
    before_signal = interrupted if stopped_at < 0 else interrupted[:stopped_at]
    landed = phase.name if not any(end in before_signal for end in phase.ends) else "after it"
    if sig == "SIGTERM":
        assert code == 0, interrupted[-4000:]

    restarted = _restart(workspace)
    revision = lumina_stack.helm_revision()
    wanted = _wanted_replicas()
    deployments = {
        name: _kube_json("get", "deployment", name)["status"].get("readyReplicas", 0)
        for name in wanted
    }
    tag = _backend_tag()
    saved = json.loads((workspace / ".lumina" / "state.json").read_text())
    saved_tag = saved["services"]["backend"]["tag"]
    left = _settled_pods(wanted)
    statuses = [str(entry["status"]) for entry in lumina_stack.helm_history()]
    left += [f"revision {s}" for s in statuses if s.startswith("pending")]
    if releasing.helm_writers(lumina_stack.RELEASE, lumina_stack.current().namespace):
        left.append("a helm process")
    kept = user.get(f"/api/todos/{todo['id']}")
    serves = f"r{revision} backend {'old' if tag == before_tag else 'new'} " + " ".join(
        f"{name} {ready}/{wanted[name]}" for name, ready in sorted(deployments.items())
    )
    says = f"r{saved['revision']} {'old' if saved_tag == before_tag else 'new'}"
    if saved.get("last_failure"):
        says += " +failure"
    TABLE.append(
        (phase.name, sig, landed, serves, says, ", ".join(left) or "nothing", str(kept.status_code))
    )

    assert landed == phase.name, (
        f"the signal landed after {phase.name} ended:\n" + interrupted[-4000:]
    )
    logs = f"\n--- signalled run:\n{interrupted[-3000:]}\n--- restart:\n{restarted[-4000:]}"
    assert kept.status_code == 200, f"todo {todo['id']} lost: {kept.status_code} {kept.text}{logs}"
    assert all(ready == wanted[name] for name, ready in deployments.items()), (deployments, logs)
    assert all(replicas >= 1 for replicas in wanted.values()), wanted
    assert revision - before <= 4, f"{revision - before} revisions for one change"
    assert saved["revision"] == revision, (saved["revision"], revision, restarted[-4000:])
    assert saved_tag == tag, (saved_tag, tag, restarted[-4000:])
    if phase.failing:
        assert tag == before_tag, "a backend that fails live must not be left serving"
    assert not left, left
    lumina_stack.count("writes present")
    lumina_stack.count("faults survived")


@pytest.fixture(scope="module", autouse=True)
def _print_table() -> Iterator[None]:
    started = time.monotonic()
    yield
    if not TABLE:
        return
    header = ("phase", "signal", "landed in", "what serves", "state says", "left over", "todo")
    widths = [max(len(row[i]) for row in [header, *TABLE]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in TABLE
    ]
    rule = "-+-".join("-" * width for width in widths)
    text = "\n".join(
        [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), rule, *lines]
    )
    text += f"\n{len(TABLE)} cases in {time.monotonic() - started:.0f}s"
    print("\nphase fault table:\n" + text, flush=True)
    out = os.environ.get("PHASE_FAULTS_TABLE")
    if out:
        pathlib.Path(out).write_text(text + "\n")
