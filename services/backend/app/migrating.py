"""Schema migrations: bring the database to the newest Alembic revision at startup,
and tell the readiness probe whether it is there.

Called by main's lifespan (upgrade) and by the /api/ready route (pending_reason).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from app.database import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_VERSION_TABLE = "alembic_version"  # Alembic's default
_REVISION = re.compile(r"""^revision\s*(?::[^=\n]*)?=\s*["']([^"'\n]+)["']\s*$""", re.M)
_DOWN_REVISION = re.compile(
    r"""^down_revision\s*(?::[^=\n]*)?=\s*(None|["'][^"'\n]+["'])\s*$""", re.M
)


def alembic_config() -> Config:
    """An Alembic config pointing at our scripts, independent of the working directory."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def script_heads() -> frozenset[str] | None:
    """The head revisions, read from the scripts' text without importing Alembic.

    Alembic's imports cost a start about 0.2 s on the pod's half CPU, and most starts
    find the database at head already. None when a script is not in the plain
    one-revision, one-parent form this reads (a merge, say): then Alembic decides.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        text = script.read_text(encoding="utf-8")
        revision, parent = _REVISION.findall(text), _DOWN_REVISION.findall(text)
        if len(revision) != 1 or len(parent) != 1:
            return None
        revisions.add(revision[0])
        if parent[0] != "None":
            parents.add(parent[0].strip("\"'"))
    return frozenset(revisions - parents) if revisions else None


def head_revisions() -> frozenset[str]:
    heads = script_heads()
    if heads is not None:
        return heads
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` in one transaction holding the write lock."""
    if revision == "head":
        heads = script_heads()
        if heads is not None and current_revisions(database) == heads:
            return
    from alembic import command

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
