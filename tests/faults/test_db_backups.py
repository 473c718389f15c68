"""The backend's database is backed up before every upgrade that restarts it, and one
command restores it; a backup that fails refuses the upgrade and loses nothing.

Against the real stack: a todo written through the frontend's NodePort, a backend-only
commit reconciled in a clone (the backup runs in the old pod while it still serves),
the todo deleted, ``lumina-reconcile db restore`` — and the todo is back, in a database
SQLite calls intact. Then a backup made impossible in the running pod (its backup
directory read-only): the upgrade is refused and the old pod keeps serving.
"""

from __future__ import annotations

import json
import pathlib
import re
import uuid

import environments
import httpx
import lumina_stack
import pytest

ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace
FRONTEND = ENVIRONMENT.url

BACKED_UP = re.compile(r"backed up the database to (/data/backups/(lumina-\S+?\.db))")


def _in_backup(name: str, title: str) -> int:
    code = (
        "import sqlite3,sys;"
        f"c=sqlite3.connect('file:/data/backups/{name}?mode=ro',uri=True);"
        "print(c.execute('select count(*) from todos where title=?',(sys.argv[1],)).fetchone()[0])"
    )
    out = lumina_stack.kubectl(
        "exec", "-n", NAMESPACE, "deploy/backend", "--", "python", "-c", code, title
    )
    return int(out.stdout.strip())


def _serving(client: httpx.Client) -> None:
    lumina_stack.wait_for(
        lambda: client.get("/api/todos").status_code == 200, 180, "the backend to serve again"
    )


def _backend_pod() -> str:
    out = lumina_stack.kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=backend", "-o", "json"
    ).stdout
    names = [
        pod["metadata"]["name"]
        for pod in json.loads(out)["items"]
        if not pod["metadata"].get("deletionTimestamp")
    ]
    assert len(names) == 1, names
    return str(names[0])


@pytest.fixture
def deployed_here(workspace: pathlib.Path) -> pathlib.Path:
    """The clone's state is deployed: its backend image has the backup command."""
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    return workspace


@pytest.mark.slow
def test_backup_before_a_backend_upgrade_restores_a_deleted_todo(
    deployed_here: pathlib.Path,
) -> None:
    client = lumina_stack.signed_in(f"backup-{uuid.uuid4().hex[:8]}@example.com")
    title = f"keep-{uuid.uuid4().hex[:8]}"
    created = client.post("/api/todos", json={"title": title})
    assert created.status_code == 201, created.text
    todo_id = created.json()["id"]
    replaced = lumina_stack.helm_revision()

    lumina_stack.change_backend(deployed_here, "backed up before this upgrade")
    code, output = lumina_stack.once(deployed_here)
    assert code == 0, output
    found = BACKED_UP.search(output)
    assert found, f"no log line names the backup:\n{output}"
    name = found.group(2)
    assert f"-rev{replaced}-before-" in name, name
    assert lumina_stack.helm_revision() == replaced + 1
    assert _in_backup(name, title) == 1

    listed = json.loads(lumina_stack.reconcile(deployed_here, "db", "backups", "--json").stdout)
    assert listed[0]["name"] == name and listed[0]["size"] > 0, listed

    _serving(client)
    assert client.delete(f"/api/todos/{todo_id}").status_code == 204
    assert client.get(f"/api/todos/{todo_id}").status_code == 404

    restored = lumina_stack.reconcile(deployed_here, "db", "restore")
    assert f"restored {name}" in restored.stdout, restored.stdout
    assert "undo with: lumina-reconcile db restore lumina-" in restored.stdout

    # Online: the pod that served the delete serves the restored todo, no restart.
    back = client.get(f"/api/todos/{todo_id}")
    assert back.status_code == 200 and back.json()["title"] == title, back.text
    assert lumina_stack.backend_sql("pragma integrity_check") == "ok"
    assert httpx.get(f"{FRONTEND}/api/health", timeout=10).status_code == 200
    client.close()


@pytest.mark.slow
def test_a_failing_backup_refuses_the_upgrade_and_the_old_pod_keeps_serving(
    deployed_here: pathlib.Path,
) -> None:
    client = lumina_stack.signed_in(f"refused-{uuid.uuid4().hex[:8]}@example.com")
    created = client.post("/api/todos", json={"title": "still here"})
    assert created.status_code == 201, created.text
    pod = _backend_pod()
    revision = lumina_stack.helm_revision()
    lock = ["exec", "-n", NAMESPACE, pod, "--", "sh", "-c"]
    lumina_stack.kubectl(*lock, "mkdir -p /data/backups && chmod 0500 /data/backups")
    try:
        lumina_stack.change_backend(deployed_here, "a backup that cannot be written")
        lumina_stack.count("faults injected")
        code, output = lumina_stack.once(deployed_here)
        assert code == 1, output
        assert "blocked: upgrade refused" in output, output
        assert f"pod {pod}" in output and "backup" in output, output
        assert lumina_stack.helm_revision() == revision
        assert _backend_pod() == pod
        assert client.get(f"/api/todos/{created.json()['id']}").status_code == 200
    finally:
        lumina_stack.kubectl(*lock, "chmod 0770 /data/backups")
    # Fixed in the pod, the same commit goes through: a refusal is not remembered as
    # a failure of these inputs.
    code, output = lumina_stack.once(deployed_here)
    assert code == 0, output
    assert BACKED_UP.search(output), output
    lumina_stack.count("faults survived")
    client.close()
