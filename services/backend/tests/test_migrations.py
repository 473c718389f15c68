"""Schema migrations: a fresh volume gets the newest schema, an existing database from
the previous release is upgraded in place with its data, and readiness tells which."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from app import migrating, security
from app.database import Database
from app.main import create_app
from tests import support


def _database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'data' / 'lumina.db'}")


def _downgrade(db: Database, revision: str) -> None:
    config = migrating.alembic_config()
    with db.writing() as session:
        config.attributes["connection"] = session.connection()
        command.downgrade(config, revision)


def test_upgrade_from_empty_reaches_head_and_matches_the_models(tmp_path: Path) -> None:
    db = _database(tmp_path)
    try:
        migrating.upgrade(db)
        assert migrating.current_revisions(db) == migrating.head_revisions() == {"0002"}
        with db.engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) == {"alembic_version", "users", "todos"}
            # The models (what the code writes) and the migrations (what the database
            # has) describe the same schema.
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        assert journal == "wal"
        # Running again on an up-to-date database is a no-op.
        migrating.upgrade(db)
        assert migrating.current_revisions(db) == {"0002"}
    finally:
        db.close()


def test_upgrade_from_0001_keeps_existing_data(tmp_path: Path) -> None:
    # A database as the previous release left it: schema 0001 with a user and todos.
    db = _database(tmp_path)
    password_hash = security.hash_password(support.PASSWORD)
    created = "2026-01-02 03:04:05.000000"  # as SQLAlchemy writes datetimes to SQLite
    try:
        migrating.upgrade(db, "0001")
        with db.writing() as session:
            session.execute(
                text(
                    "INSERT INTO users (id, email, password_hash, created_at) "
                    "VALUES (7, 'old@example.org', :hash, :at)"
                ),
                {"hash": password_hash, "at": created},
            )
            for todo_id, title, done in [(1, "from 0001", False), (2, "done in 0001", True)]:
                session.execute(
                    text(
                        "INSERT INTO todos (id, owner_id, title, description, done, "
                        "created_at, updated_at) VALUES (:id, 7, :title, 'kept', :done, :at, :at)"
                    ),
                    {"id": todo_id, "title": title, "done": done, "at": created},
                )
        assert migrating.current_revisions(db) == {"0001"}
    finally:
        db.close()

    # The new release starts on it: migrations run at startup.
    settings = support.make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/ready").status_code == 200
        login = client.post(
            "/api/auth/login", json={"email": "old@example.org", "password": support.PASSWORD}
        )
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        page = client.get("/api/todos", headers=headers).json()
        assert page["total"] == 2
        by_id = {item["id"]: item for item in page["items"]}
        assert by_id[1]["title"] == "from 0001"
        assert by_id[2]["done"] is True
        for item in by_id.values():
            assert item["description"] == "kept"
            assert item["priority"] == "medium"  # the new column's default for old rows
            assert item["due_date"] is None
            assert item["created_at"] == "2026-01-02T03:04:05Z"
        # And the new columns work on old rows.
        patched = client.patch(
            "/api/todos/1", json={"priority": "high", "due_date": "2030-05-06"}, headers=headers
        )
        assert patched.json()["priority"] == "high"
        assert patched.json()["due_date"] == "2030-05-06"


def test_ready_is_503_with_the_reason_when_the_schema_is_behind(client: TestClient) -> None:
    ready = client.get("/api/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "revision": "0002", "mail": "off"}

    # Someone rolls the schema back under the running process.
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    _downgrade(runtime.database, "0001")

    behind = client.get("/api/ready")
    assert behind.status_code == 503
    assert behind.json() == {"detail": "database schema is at revision 0001, expected 0002"}
    # Liveness is unaffected: restarting would not help, migrating would.
    assert client.get("/api/health").status_code == 200

    migrating.upgrade(runtime.database)
    assert client.get("/api/ready").status_code == 200


def test_downgrade_to_0001_and_back_keeps_todos(tmp_path: Path) -> None:
    settings = support.make_settings(tmp_path)
    with TestClient(create_app(settings)) as client:
        headers = support.sign_up(client, "ann@example.org")
        client.post("/api/todos", json={"title": "survivor", "priority": "low"}, headers=headers)
        db = client.app.state.runtime.database  # type: ignore[attr-defined]
        _downgrade(db, "0001")
        migrating.upgrade(db)
        page = client.get("/api/todos", headers=headers).json()
    assert [item["title"] for item in page["items"]] == ["survivor"]
    # Priority did not exist in 0001, so the round trip resets it to the default.
    assert page["items"][0]["priority"] == "medium"


def test_heads_read_from_the_scripts_are_alembics(tmp_path: Path) -> None:
    """The start-up shortcut reads heads without Alembic; it must agree with Alembic,
    also for a new script on top, and give way to Alembic for a form it cannot read."""
    from alembic.script import ScriptDirectory

    def alembics() -> frozenset[str]:
        config = migrating.alembic_config()
        return frozenset(ScriptDirectory.from_config(config).get_heads())

    assert migrating.script_heads() == alembics() == {"0002"}
    versions = migrating.MIGRATIONS_DIR / "versions"
    extra = versions / "0003_bench_only.py"
    merge = versions / "0004_merge.py"
    try:
        extra.write_text(
            'revision: str = "0003"\ndown_revision: str | None = "0002"\n'
            "def upgrade() -> None: ...\ndef downgrade() -> None: ...\n",
            encoding="utf-8",
        )
        assert migrating.script_heads() == alembics() == {"0003"}
        merge.write_text(
            'revision = "0004"\ndown_revision = ("0003", "0002")\n'
            "def upgrade() -> None: ...\ndef downgrade() -> None: ...\n",
            encoding="utf-8",
        )
        assert migrating.script_heads() is None
        assert migrating.head_revisions() == alembics() == {"0004"}
    finally:
        extra.unlink(missing_ok=True)
        merge.unlink(missing_ok=True)


def test_a_start_at_head_does_not_import_alembic(tmp_path: Path) -> None:
    """Most starts find the schema at head: they must not pay for Alembic's imports,
    and a start on an empty volume still migrates."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'lumina.db'}"
    probe = (
        "import sys\n"
        "from app import migrating\n"
        "from app.database import Database\n"
        f"db = Database({url!r})\n"
        "migrating.upgrade(db)\n"
        "print(sorted(migrating.current_revisions(db)), 'alembic' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[1]
    first = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True)
    assert first.stdout.split() == ["['0002']", "True"], first.stderr
    again = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True)
    assert again.stdout.split() == ["['0002']", "False"], again.stderr
