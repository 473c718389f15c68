"""Schema migrations: bring the database to the newest Alembic revision at startup,
and tell the readiness probe whether it is there.

Called by main's lifespan (upgrade) and by the /api/ready route (pending_reason).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from app.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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
    with database.reading() as session:
        return frozenset(MigrationContext.configure(session.connection()).get_current_heads())


def pending_reason(database: Database, heads: frozenset[str]) -> str | None:
    """None when the database answers and is at ``heads``; otherwise why it is not ready."""
    try:
        with database.reading() as session:
            session.execute(text("SELECT 1"))
            current = frozenset(
                MigrationContext.configure(session.connection()).get_current_heads()
            )
    except Exception as exc:  # any driver error means "not ready", and the probe says which
        return f"database unavailable: {type(exc).__name__}: {exc}"
    if current != heads:
        have = ", ".join(sorted(current)) or "none"
        want = ", ".join(sorted(heads))
        return f"database schema is at revision {have}, expected {want}"
    return None
