"""Data-safe backend upgrades on the real cluster (issue 14): trial starts, restore on
rollback, and backups pulled out of the pod.

Each test commits a change in the shared clone (fixture ``workspace``), runs one
``lumina-reconcile once --mode commit`` there, and puts the good files back (and
converges) before it ends, so the next test starts from a serving release.
"""

from __future__ import annotations

import pathlib
import sqlite3
import threading
import time
from collections.abc import Iterator

import environments
import httpx
import pytest
from conftest import (
    commit,
    helm_revision,
    json_of,
    kubectl,
    pod_uids,
    reconcile,
    run,
    wait_for,
)

from reconciler.cluster import kube

ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace
FRONTEND = ENVIRONMENT.url
DOCKERFILE = "services/backend/Dockerfile"
MIGRATION = "services/backend/app/migrations/versions/0003_e2e.py"
UVICORN_CMD = 'CMD ["/opt/venv/bin/uvicorn"'


def _once(repo: pathlib.Path) -> tuple[int, str]:
    done = reconcile(repo, "once", "--mode", "commit", check=False)
    return done.returncode, done.stdout + done.stderr


def _says(output: str, outcome: str) -> bool:
    return any(line.startswith(f"{outcome}:") for line in output.splitlines())


@pytest.fixture
def restored(workspace: pathlib.Path, user: httpx.Client) -> Iterator[pathlib.Path]:
    """The backend's files as they were, committed and converged after the test, and
    the backend answering through the frontend again (a Recreate rollout leaves a gap
    while the Service's endpoints move to the new pod)."""
    dockerfile = (workspace / DOCKERFILE).read_text()
    yield workspace
    (workspace / DOCKERFILE).write_text(dockerfile)
    (workspace / MIGRATION).unlink(missing_ok=True)
    if run("git", "status", "--porcelain", cwd=workspace).stdout.strip():
        commit(workspace, "backend: as it was")
    code, output = _once(workspace)
    assert code == 0, output
    wait_for(
        lambda: user.get("/api/todos").status_code == 200, 120, "the backend after the restore"
    )


class Poller:
    """Reads one todo through the frontend's NodePort every 0.2 s in a thread (bounded:
    at most 3000 requests), counting the answers that were not 200."""

    def __init__(self, cookies: httpx.Cookies, todo_id: int) -> None:
        self.client = httpx.Client(base_url=FRONTEND, cookies=cookies, timeout=5)
        self.todo_id = todo_id
        self.ok = 0
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        for _ in range(3000):
            if self._stop.is_set():
                return
            try:
                answer = self.client.get(f"/api/todos/{self.todo_id}")
                if answer.status_code == 200:
                    self.ok += 1
                else:
                    self.failed.append(f"{answer.status_code} at {time.monotonic():.1f}")
            except httpx.HTTPError as exc:
                self.failed.append(f"{type(exc).__name__} at {time.monotonic():.1f}")
            self._stop.wait(0.2)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()


def _trial_pods(cluster: kube.Kube) -> list[str]:
    return [
        str(pod["metadata"]["name"])
        for pod in cluster.list("v1", "Pod", NAMESPACE, label_selector="lumina.dev/trial")
    ]


def test_a_backend_that_cannot_start_is_refused_and_the_app_never_stops(
    restored: pathlib.Path,
    helm_env: dict[str, str],
    cluster: kube.Kube,
    user: httpx.Client,
) -> None:
    workspace = restored
    todo = json_of(user.post("/api/todos", json={"title": "served through a refused upgrade"}))
    path = workspace / DOCKERFILE
    crash = '["/opt/venv/bin/python", "-c", "import sys; sys.exit(\'e2e: refuses to start\')"]'
    path.write_text(path.read_text().replace(UVICORN_CMD, f"CMD {crash}\n# was: {UVICORN_CMD}", 1))
    commit(workspace, "backend: crash on start")
    revision = helm_revision(helm_env, NAMESPACE)
    serving = pod_uids(cluster, "backend", NAMESPACE)
    with Poller(user.cookies, todo["id"]) as poller:
        code, output = _once(workspace)
    assert code == 1, output
    assert _says(output, "trial-failed"), output
    assert "e2e: refuses to start" in output, output
    # The app answered the whole time, from the pod that served before.
    assert poller.failed == [], poller.failed
    assert poller.ok >= 10, f"only {poller.ok} reads during the cycle"
    assert helm_revision(helm_env, NAMESPACE) == revision, "nothing was upgraded"
    assert pod_uids(cluster, "backend", NAMESPACE) == serving, "the serving pod was never replaced"
    wait_for(lambda: _trial_pods(cluster) == [], 30, "the trial pod to be gone")
    # The same inputs are not tried again in a loop.
    again, output = _once(workspace)
    assert again == 1 and _says(output, "skipped-known-failure"), output


def test_a_trial_pod_the_cluster_refuses_is_skipped_and_the_upgrade_goes_ahead(
    restored: pathlib.Path, helm_env: dict[str, str], cluster: kube.Kube
) -> None:
    """A namespace whose LimitRange caps a container at 500m refuses the trial pod (it
    asks for a core to start on): the trial is skipped with the API's reason, and the
    upgrade goes ahead rather than being blocked by its safety check."""
    workspace = restored
    source = workspace / "services/backend/app/main.py"
    original = source.read_text()
    cap = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "e2e-cpu-cap", "namespace": NAMESPACE},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "500m"}}]},
    }
    cluster.apply(cap)
    try:
        source.write_text(original + f"# e2e: upgraded under a CPU cap {time.time_ns()}\n")
        commit(workspace, "backend: an edit under a CPU cap")
        revision = helm_revision(helm_env, NAMESPACE)
        code, output = _once(workspace)
    finally:
        cluster.delete("v1", "LimitRange", NAMESPACE, "e2e-cpu-cap")
        source.write_text(original)
    assert code == 0, output
    assert _says(output, "converged"), output
    assert "trial start skipped (the cluster refused a trial pod" in output, output
    assert "upgrading untried" in output, output
    assert helm_revision(helm_env, NAMESPACE) == revision + 1
    assert _trial_pods(cluster) == []


def test_a_migration_that_fails_on_the_real_data_is_refused(
    restored: pathlib.Path, helm_env: dict[str, str], cluster: kube.Kube, user: httpx.Client
) -> None:
    workspace = restored
    for _ in range(2):  # the data the new constraint cannot hold
        json_of(user.post("/api/todos", json={"title": "the same title twice"}))
    (workspace / MIGRATION).write_text(
        '"""e2e: a unique title per owner, which the live data violates."""\n\n'
        "from alembic import op\n\n"
        'revision = "0003"\ndown_revision = "0002"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n"
        '    op.create_index("ix_e2e_title", "todos", ["owner_id", "title"], unique=True)\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_index("ix_e2e_title", table_name="todos")\n'
    )
    commit(workspace, "backend: unique titles")
    revision = helm_revision(helm_env, NAMESPACE)
    serving = pod_uids(cluster, "backend", NAMESPACE)
    code, output = _once(workspace)
    assert code == 1, output
    assert _says(output, "trial-failed"), output
    assert "UNIQUE constraint failed" in output, output
    assert helm_revision(helm_env, NAMESPACE) == revision
    assert pod_uids(cluster, "backend", NAMESPACE) == serving


def test_a_failure_after_migrating_live_is_rolled_back_with_the_data_restored(
    restored: pathlib.Path, helm_env: dict[str, str], user: httpx.Client
) -> None:
    """The new image migrates and serves on the trial's copy, but fails once live (it
    exits after migrating unless it runs on /trial/): the rollback must bring back the
    pre-upgrade backup, or the old image would face a schema it does not know."""
    workspace = restored
    todo = json_of(user.post("/api/todos", json={"title": "kept across a restore"}))
    (workspace / MIGRATION).write_text(
        '"""e2e: a new column."""\n\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        'revision = "0003"\ndown_revision = "0002"\nbranch_labels = None\ndepends_on = None\n\n\n'
        "def upgrade() -> None:\n"
        '    op.add_column("todos", sa.Column("e2e_note", sa.String(20), nullable=True))\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_column("todos", "e2e_note")\n'
    )
    fails_live = (
        "import os, sys; from app import database, migrating; "
        "url = os.environ['DATABASE_URL']; "
        "'/trial/' in url or (migrating.upgrade(database.Database(url)), "
        "sys.exit('e2e: migrated, then failed live')); "
        "os.execv('/opt/venv/bin/uvicorn', ['uvicorn', 'app.main:app', '--host', '0.0.0.0', "
        "'--port', '8000'])"
    )
    path = workspace / DOCKERFILE
    command = f'CMD ["/opt/venv/bin/python", "-c", "{fails_live}"]'
    path.write_text(path.read_text().replace(UVICORN_CMD, f"{command}\n# was: {UVICORN_CMD}", 1))
    commit(workspace, "backend: new column, fails live")
    before = helm_revision(helm_env, NAMESPACE)
    code, output = _once(workspace)
    assert code == 1, output
    assert _says(output, "rolled-back"), output
    assert "restored the database from" in output, output
    assert "0003" in output, output
    assert helm_revision(helm_env, NAMESPACE) == before + 2  # the upgrade, then its rollback
    wait_for(
        lambda: user.get(f"/api/todos/{todo['id']}").status_code == 200,
        120,
        "the todo from the old pod on the restored database",
    )
    assert json_of(user.get(f"/api/todos/{todo['id']}"))["title"] == "kept across a restore"


def test_a_pulled_backup_holds_the_rows_of_its_moment(
    workspace: pathlib.Path, helm_env: dict[str, str], user: httpx.Client, tmp_path: pathlib.Path
) -> None:
    json_of(user.post("/api/todos", json={"title": "in the pulled backup"}))
    made = run(
        *kubectl(helm_env),
        "exec",
        "-n",
        NAMESPACE,
        "deploy/backend",
        "--",
        "python",
        "-m",
        "app.backup",
        "--json",
        "create",
        "--label",
        "e2e-pull",
    )
    assert '"path"' in made.stdout, made.stdout + made.stderr
    page = json_of(user.get("/api/todos", params={"limit": 100}))
    titles = {todo["title"] for todo in page["items"]}
    assert "in the pulled backup" in titles
    pulled = reconcile(workspace, "db", "backups", "pull", "--to", str(tmp_path))
    assert "integrity ok" in pulled.stdout, pulled.stdout + pulled.stderr
    [copy] = list(tmp_path.glob("lumina-*-e2e-pull.db"))
    with sqlite3.connect(copy) as connection:
        rows = {row[0] for row in connection.execute("SELECT title FROM todos")}
    assert titles <= rows, titles - rows
