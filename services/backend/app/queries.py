"""The SQL of the request path: the signed-in user's row and their todos, without the ORM.

Who calls it: the todos routes and the authentication dependency, through
``Database.read``/``write``. Each function takes a plain ``sqlite3`` connection inside
a transaction. Values are stored exactly as SQLAlchemy stores the same columns
(``models``), so the ORM, the migrations and an older image read them unchanged:
datetimes as ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, dates ISO, booleans 0/1. Every
todo statement names its owner, which is what makes another user's todo a 404.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from app.models import utcnow

_COLUMNS = "id, title, description, due_date, priority, done, created_at, updated_at"
_NAMES = tuple(_COLUMNS.split(", "))
#: what a PATCH may change; column names come from here, never from the request
UPDATABLE = frozenset({"title", "description", "due_date", "priority", "done"})

Todo = dict[str, Any]


def _stored(value: object) -> object:
    if isinstance(value, dt.datetime):
        # SQLAlchemy's SQLite DATETIME format; the UTC wall time, no offset.
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def _todo(row: tuple[Any, ...]) -> Todo:
    # Strings as stored, for the response model to parse; the times are UTC without
    # an offset, and are answered as UTC, as the ORM answered them.
    todo = dict(zip(_NAMES, row, strict=True))
    todo["created_at"] = dt.datetime.fromisoformat(todo["created_at"]).replace(tzinfo=dt.UTC)
    todo["updated_at"] = dt.datetime.fromisoformat(todo["updated_at"]).replace(tzinfo=dt.UTC)
    return todo


def user_row(connection: sqlite3.Connection, user_id: int) -> tuple[str, str] | None:
    """The email and current password hash of user ``user_id``; None when there is none."""
    row = connection.execute(
        "SELECT email, password_hash FROM users WHERE id = ?", (user_id,)
    ).fetchone()
    return None if row is None else (row[0], row[1])


def login_row(connection: sqlite3.Connection, email: str) -> tuple[int, str] | None:
    """The id and password hash of the account ``email`` (normalised); None when none."""
    row = connection.execute(
        "SELECT id, password_hash FROM users WHERE email = ?", (email,)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def insert_user(connection: sqlite3.Connection, email: str, password_hash: str) -> int | None:
    """Store a new account; its id, or None when ``email`` is registered already."""
    try:
        cursor = connection.execute(
            "INSERT INTO users (email, password_hash, created_at) VALUES (?, ?, ?)",
            (email, password_hash, _stored(utcnow())),
        )
    except sqlite3.IntegrityError:
        return None
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _escape_like(text: str) -> str:
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def list_todos(
    connection: sqlite3.Connection,
    owner_id: int,
    *,
    done: bool | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[Todo]]:
    """The total matching and one page of them, newest first."""
    where = "owner_id = ?"
    params: list[object] = [owner_id]
    if done is not None:
        where += " AND done = ?"
        params.append(int(done))
    if q:
        # A "%" or "_" typed by the user is matched literally.
        where += " AND title LIKE '%' || ? || '%' ESCAPE '/'"
        params.append(_escape_like(q))
    # `where` is built from the fixed fragments above only; values are parameters.
    total = connection.execute(f"SELECT count(*) FROM todos WHERE {where}", params).fetchone()[0]  # noqa: S608
    rows = connection.execute(
        f"SELECT {_COLUMNS} FROM todos WHERE {where} "  # noqa: S608
        "ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return int(total), [_todo(row) for row in rows]


def get_todo(connection: sqlite3.Connection, owner_id: int, todo_id: int) -> Todo | None:
    row = connection.execute(
        f"SELECT {_COLUMNS} FROM todos WHERE id = ? AND owner_id = ?",  # noqa: S608
        (todo_id, owner_id),
    ).fetchone()
    return None if row is None else _todo(row)


def insert_todo(connection: sqlite3.Connection, owner_id: int, fields: dict[str, Any]) -> Todo:
    """Store a new todo; it is returned as the ORM returned a new one (times with UTC)."""
    now = utcnow()
    todo: Todo = {"done": False, **fields, "created_at": now, "updated_at": now}
    names = ["owner_id", *todo]
    cursor = connection.execute(
        f"INSERT INTO todos ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",  # noqa: S608
        [owner_id, *(_stored(value) for value in todo.values())],
    )
    return {"id": cursor.lastrowid, **todo}


def update_todo(
    connection: sqlite3.Connection, owner_id: int, todo_id: int, changes: dict[str, Any]
) -> Todo | None:
    """Apply ``changes`` (keys from UPDATABLE); None when the owner has no such todo."""
    todo = get_todo(connection, owner_id, todo_id)
    if todo is None or not changes:
        return todo
    assert UPDATABLE.issuperset(changes)
    changes = {**changes, "updated_at": utcnow()}
    assignments = ", ".join(f"{name} = ?" for name in changes)
    connection.execute(
        f"UPDATE todos SET {assignments} WHERE id = ? AND owner_id = ?",  # noqa: S608
        [*(_stored(value) for value in changes.values()), todo_id, owner_id],
    )
    return {**todo, **changes}


def delete_todo(connection: sqlite3.Connection, owner_id: int, todo_id: int) -> bool:
    """True when the owner had the todo (and now does not)."""
    cursor = connection.execute(
        "DELETE FROM todos WHERE id = ? AND owner_id = ?", (todo_id, owner_id)
    )
    return cursor.rowcount > 0
