"""Online backups: made and restored while the real server serves, on real SQLite files.

The command runs as the reconciler runs it in the pod (``python -m app.backup``, a
separate process beside uvicorn on the same volume); nothing here is mocked.
"""

from __future__ import annotations

import datetime
import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from app import backup, migrating
from app.database import Database
from tests import support


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.backup", *args],
        cwd=support.BACKEND_DIR,
        env=support.service_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _titles(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        return {row[0] for row in connection.execute("SELECT title FROM todos")}


def _database(tmp_path: Path) -> Path:
    """A migrated database with one todo, as the app leaves it (WAL mode)."""
    db = Database(f"sqlite:///{tmp_path / 'data' / 'lumina.db'}")
    try:
        migrating.upgrade(db)
        with db.writing() as session:
            session.execute(
                text(
                    "INSERT INTO users (email, password_hash, created_at) "
                    "VALUES ('a@example.org', 'x', '2026-01-01 00:00:00')"
                )
            )
            session.execute(
                text(
                    "INSERT INTO todos (owner_id, title, description, done, priority, "
                    "created_at, updated_at) VALUES (1, 'first', '', 0, 'medium', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
    finally:
        db.engine.dispose()
    return db.path


def test_backup_and_restore_online_while_the_server_serves(
    server: support.Server, server_env: dict[str, str]
) -> None:
    with server.client() as client:
        headers = support.sign_up(client, "alice@example.org")
        kept = client.post("/api/todos", json={"title": "keep me"}, headers=headers)
        assert kept.status_code == 201, kept.text

        made = _run(server_env, "--json", "create", "--label", "rev7")
        assert made.returncode == 0, made.stderr
        document = json.loads(made.stdout)
        assert document["name"].endswith("-rev7.db")
        assert document["label"] == "rev7"
        assert Path(document["path"]).parent.name == "backups"
        assert "keep me" in _titles(Path(document["path"]))
        assert backup.integrity(Path(document["path"])) == "ok"

        gone = client.delete(f"/api/todos/{kept.json()['id']}", headers=headers)
        assert gone.status_code == 204
        later = client.post("/api/todos", json={"title": "after the backup"}, headers=headers)
        assert later.status_code == 201

        restored = _run(server_env, "restore")
        assert restored.returncode == 0, restored.stderr
        assert f"restored {document['name']}" in restored.stdout
        assert "pre-restore" in restored.stdout

        # The same server process, never restarted, serves the restored data.
        titles = {t["title"] for t in client.get("/api/todos", headers=headers).json()["items"]}
        assert titles == {"keep me"}
        assert client.get("/api/ready").status_code == 200
        # And keeps writing to it.
        again = client.post("/api/todos", json={"title": "after the restore"}, headers=headers)
        assert again.status_code == 201

    database = backup.database_path(server_env["DATABASE_URL"])
    assert backup.integrity(database, read_only=False) == "ok"
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # What the restore replaced is kept, so restoring it undoes the restore.
    previous = [
        b for b in backup.list_backups(database.parent / "backups") if b.label == "pre-restore"
    ]
    assert len(previous) == 1
    assert "after the backup" in _titles(previous[0].path)


def test_backups_made_under_concurrent_writes_are_complete(tmp_path: Path) -> None:
    database = _database(tmp_path)
    stop = threading.Event()
    written: list[int] = []

    def write() -> None:
        with sqlite3.connect(database, timeout=30) as connection:
            while not stop.is_set():
                connection.execute(
                    "INSERT INTO todos (owner_id, title, description, done, priority, "
                    "created_at, updated_at) VALUES (1, 'w', '', 0, 'low', "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
                connection.commit()
                written.append(1)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        made = [backup.create(database, label=f"n{number}", keep=10) for number in range(5)]
    finally:
        stop.set()
        writer.join()
    assert written, "the writer never got a turn"
    counts = []
    for one in made:
        assert backup.integrity(one.path) == "ok"
        with sqlite3.connect(one.path) as connection:
            counts.append(connection.execute("SELECT count(*) FROM todos").fetchone()[0])
    assert counts == sorted(counts)
    assert not list((database.parent / "backups").glob("*.partial"))


def test_only_the_newest_are_kept_and_listed_newest_first(tmp_path: Path) -> None:
    database = _database(tmp_path)
    start = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
    for minute in range(7):
        backup.create(database, label="rev", keep=3, now=start + datetime.timedelta(minutes=minute))
    listed = backup.list_backups(database.parent / "backups")
    assert [b.created.minute for b in listed] == [6, 5, 4]
    assert listed[0].name == "lumina-20260301T120600.000Z-rev.db"
    # Anything else in the directory is neither listed nor pruned.
    stray = database.parent / "backups" / "notes.txt"
    stray.write_text("mine")
    backup.create(database, keep=1)
    assert len(backup.list_backups(stray.parent)) == 1
    assert stray.exists()


def test_a_backup_that_would_fill_the_volume_is_refused(tmp_path: Path) -> None:
    database = _database(tmp_path)
    free = shutil.disk_usage(database.parent).free
    with pytest.raises(backup.BackupError, match="not enough room on the volume"):
        backup.create(database, reserve=free)
    assert backup.list_backups(backup.backup_dir(database)) == []


def test_labels_become_safe_file_names(tmp_path: Path) -> None:
    database = _database(tmp_path)
    made = backup.create(database, label="../../etc/passwd rev 3")
    assert made.path.parent == database.parent / "backups"
    assert made.label == "etc-passwd-rev-3"


def test_a_second_restore_of_the_newest_does_not_pick_the_pre_restore_copy(
    tmp_path: Path,
) -> None:
    database = _database(tmp_path)
    first = backup.create(database, label="rev1")
    backup.restore(database)
    assert backup.choose(database.parent / "backups", None) == first
    by_name = backup.restore(database, first.path.stem)
    assert by_name.backup == first


def test_an_older_schema_is_migrated_on_restore(tmp_path: Path) -> None:
    database = _database(tmp_path)
    old = Database(f"sqlite:///{tmp_path / 'old' / 'lumina.db'}")
    try:
        migrating.upgrade(old, "0001")
    finally:
        old.engine.dispose()
    made = backup.create(old.path, label="schema-0001")
    target = backup.backup_dir(database)
    target.mkdir(exist_ok=True)
    made.path.rename(target / made.name)

    done = backup.restore(database, made.name)
    assert done.revisions == tuple(sorted(migrating.head_revisions()))


def test_bad_backups_are_refused_and_the_database_is_untouched(tmp_path: Path) -> None:
    database = _database(tmp_path)
    directory = backup.backup_dir(database)
    good = backup.create(database, label="good")
    before = _titles(database)

    corrupt = directory / "lumina-20990101T000000.000Z-corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + b"\xff" * 5000)
    with pytest.raises(backup.BackupError, match="integrity check"):
        backup.restore(database)

    newer = backup.create(database, label="newer")
    with sqlite3.connect(newer.path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    corrupt.unlink()
    with pytest.raises(backup.BackupError, match="revision 9999"):
        backup.restore(database, newer.name)

    with pytest.raises(backup.BackupError, match=f"no backup named 'nope'.*{good.name}"):
        backup.restore(database, "nope")
    assert _titles(database) == before
    assert not [b for b in backup.list_backups(directory) if b.label == "pre-restore"]


def test_the_command_reports_errors_in_one_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'none' / 'lumina.db'}"}
    missing = _run(env, "create")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: there is no database at")
    assert "Traceback" not in missing.stderr

    empty = _run(env, "restore")
    assert empty.returncode == 1
    assert "there is no backup" in empty.stderr

    listed = _run(env, "--json", "list")
    assert listed.returncode == 0
    assert json.loads(listed.stdout) == []

    wrong = _run({"DATABASE_URL": "postgresql://x/y"}, "list")
    assert wrong.returncode == 1
    assert "SQLite URL" in wrong.stderr


def test_a_trial_copy_is_of_the_named_backup_and_never_touches_the_live_file(
    tmp_path: Path,
) -> None:
    database = _database(tmp_path)
    made = backup.create(database, label="rev3-before-abc")
    before = database.read_bytes()
    trial = tmp_path / "trial"
    trial.mkdir()
    env = {"DATABASE_URL": f"sqlite:///{database}", "LUMINA_TRIAL_BACKUP": str(made.path)}
    done = _run(env, "--json", "trial-copy", "--to", str(trial / "lumina.db"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["copied"] == str(made.path)
    assert _titles(trial / "lumina.db") == {"first"}
    assert database.read_bytes() == before
    # Without any backup the trial starts on an empty database, and says so.
    empty = tmp_path / "empty" / "lumina.db"
    empty.parent.mkdir()
    none = _run(
        {"DATABASE_URL": f"sqlite:///{empty}"}, "--json", "trial-copy", "--to", str(trial / "x")
    )
    assert none.returncode == 0, none.stderr
    assert "empty database" in json.loads(none.stdout)["reason"]


def test_a_trial_start_copies_the_named_backup_into_its_empty_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trial pod has no prepare step: the app's own start copies the backup the
    reconciler names into the empty scratch place and serves on it; the live file is
    not touched, and a place that already holds data is never overwritten."""
    from fastapi.testclient import TestClient

    from app.main import create_app

    database = _database(tmp_path)
    made = backup.create(database, label="rev3-before-abc")
    before = database.read_bytes()
    trial = tmp_path / "trial" / "lumina.db"
    trial.parent.mkdir()
    monkeypatch.setenv("LUMINA_TRIAL_BACKUP", str(made.path))
    settings = support.make_settings(tmp_path, DATABASE_URL=f"sqlite:///{trial}")
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/ready").status_code == 200
    assert _titles(trial) == {"first"}
    assert database.read_bytes() == before
    # Pointed at data (the live file, by a mistaken environment): nothing is copied.
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE todos SET title = 'changed since the backup'")
    live = support.make_settings(tmp_path, DATABASE_URL=f"sqlite:///{database}")
    with TestClient(create_app(live)) as client:
        assert client.get("/api/ready").status_code == 200
    assert _titles(database) == {"changed since the backup"}


def _migrate_to_a_future_schema(database: Path) -> None:
    """What a newer backend's migration leaves: a schema this code does not know."""
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE todos ADD COLUMN colour TEXT")
        connection.execute("UPDATE alembic_version SET version_num = '0099_future'")
        connection.execute("UPDATE todos SET title = 'written by the new pod'")


def test_revert_restores_only_when_the_failed_pod_migrated(tmp_path: Path) -> None:
    database = _database(tmp_path)
    made = backup.create(database, label="rev4-before-new")
    env = {"DATABASE_URL": f"sqlite:///{database}"}

    # The new pod crashed before migrating: the data (and every write since) stays.
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE todos SET title = 'written after the backup'")
    kept = _run(env, "--json", "revert", str(made.path))
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["restored"] is None
    assert _titles(database) == {"written after the backup"}

    # It migrated, then failed: the backup comes back, the migrated file is kept aside.
    _migrate_to_a_future_schema(database)
    reverted = _run(env, "--json", "revert", made.name)
    assert reverted.returncode == 0, reverted.stderr
    said = json.loads(reverted.stdout)
    assert said["restored"]["name"] == made.name
    assert "0099_future" in said["reason"]
    assert _titles(database) == {"first"}
    assert _titles(backup.backup_dir(database) / said["previous"]["name"]) == {
        "written by the new pod"
    }


def test_an_export_carries_the_backup_whole_with_its_checksum(tmp_path: Path) -> None:
    import base64
    import hashlib

    database = _database(tmp_path)
    made = backup.create(database, label="rev5")
    done = _run({"DATABASE_URL": f"sqlite:///{database}"}, "export", made.name)
    assert done.returncode == 0, done.stderr
    header, _, body = done.stdout.partition("\n")
    data = base64.b64decode(body)
    assert data == made.path.read_bytes()
    assert json.loads(header)["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////data/lumina.db",
        "sqlite:///relative/lumina.db",
        "sqlite+pysqlite:////data/lumina.db",
        "sqlite:////data/lumina.db?timeout=30",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://user@host/db",
        "not a url",
    ],
)
def test_the_backup_command_reads_database_url_as_the_app_does(url: str) -> None:
    """``app.backup`` parses DATABASE_URL without SQLAlchemy (it runs before every
    upgrade, on half a CPU): it must find the same file, or refuse the same URLs."""
    from app import sqlite_urls
    from app.database import sqlite_path

    try:
        expected: Path | None = sqlite_path(url)
    except Exception:
        expected = None
    try:
        found: Path | None = sqlite_urls.sqlite_file(url)
    except ValueError:
        found = None
    assert found == expected
