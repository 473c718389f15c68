"""The file behind a SQLite URL, read without SQLAlchemy.

Who calls it: ``app.backup``, which runs as a command of its own in the pod before
every upgrade (and in every trial start), where importing SQLAlchemy and pydantic would
be most of its time on half a CPU. The app itself reads the URL with SQLAlchemy
(``app.database.sqlite_path``); ``tests/test_backup.py`` holds the two to the same
answers.
"""

from __future__ import annotations

import re
from pathlib import Path

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$")


def sqlite_file(url: str) -> Path:
    """The database file of ``sqlite:///relative.db`` or ``sqlite:////absolute.db``."""
    found = _URL.match(url.strip())
    backend = found.group("scheme").split("+", 1)[0] if found else ""
    if backend != "sqlite" or found is None:
        raise ValueError(
            f"DATABASE_URL must be a SQLite URL such as sqlite:////data/lumina.db, "
            f"got the '{backend or url[:20]}' scheme"
        )
    rest = found.group("rest").split("?", 1)[0]
    # After the scheme: an (always empty) host, then "/" and the path.
    database = rest.partition("/")[2] if "/" in rest else ""
    if not database or database == ":memory:":
        raise ValueError(
            "DATABASE_URL must name a database file (sqlite:////data/lumina.db), "
            "not an in-memory database"
        )
    return Path(database).absolute()
