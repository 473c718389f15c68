"""Alembic environment: run by app.migrating at startup, or by the ``alembic`` CLI.

At startup the app hands over a connection that already holds the write lock
(``config.attributes["connection"]``). From the CLI the database comes from
DATABASE_URL, opened through app.database so it gets the same pragmas.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from app import models  # noqa: F401  # registers the tables on SQLModel.metadata
from app.database import Database

config = context.config
target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table.
        render_as_batch=True,
        # app.database emits BEGIN itself, so DDL is transactional here after all.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(
        url=os.environ.get("DATABASE_URL", "sqlite:////data/lumina.db"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    _run(given)
else:
    database = Database(os.environ.get("DATABASE_URL", "sqlite:////data/lumina.db"))
    try:
        with database.engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        database.close()
