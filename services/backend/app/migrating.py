"""Schema migrations: bring the database to the newest Alembic revision at startup,
and tell the readiness probe whether it is there.

Called by main's lifespan (upgrade) and by the /api/ready route (pending_reason).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_VERSION_TABLE = "alembic_version"  # Alembic's default


def alembic_config() -> Config:
    """An Alembic config pointing at our scripts, independent of the working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` in one transaction holding the write lock."""
    config = alembic_config()
    with database.writing() as session:
        config.attributes["connection"] = session.connection()
        command.upgrade(config, revision)


def current_revisions(database: Database) -> frozenset[str]:
    """The revisions recorded in the database (empty before the first migration)."""
    with database.reading() as session:
        connection = session.connection()
        # Read directly rather than through MigrationContext, which logs on every call
        # and would flood the log at the readiness probe's rate.
        if not sa.inspect(connection).has_table(_VERSION_TABLE):
            return frozenset()
        versions = sa.table(_VERSION_TABLE, sa.column("version_num"))
        rows = connection.execute(sa.select(versions.c.version_num))
        return frozenset(str(row[0]) for row in rows)


def pending_reason(database: Database, heads: frozenset[str]) -> str | None:
    """None when the database answers and is at ``heads``; otherwise why it is not ready."""
    try:
        current = current_revisions(database)
    except Exception as exc:  # any driver error means "not ready", and the probe says which
        return f"database unavailable: {type(exc).__name__}: {exc}"
    if current != heads:
        have = ", ".join(sorted(current)) or "none"
        want = ", ".join(sorted(heads))
        return f"database schema is at revision {have}, expected {want}"
    return None
