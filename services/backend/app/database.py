"""The SQLite database: engine, connection pragmas, and the read/write session scopes.

Writes are serialised in two layers so that concurrent requests queue instead of
failing with "database is locked":

* inside this process a lock admits one writing transaction at a time, so the
  threadpool's many request threads never race for SQLite's single write lock;
* every writing transaction starts with ``BEGIN IMMEDIATE`` (it takes the write lock
  up front instead of upgrading a read lock mid-transaction, which SQLite can only
  resolve by failing one side), and ``busy_timeout`` makes any other process that
  holds the lock (an operator's ``alembic`` or ``sqlite3`` shell) a wait, not an error.

Readers use plain ``BEGIN`` and, thanks to WAL, never block on the writer.

The request path of the todos and of every authenticated request (``read``/``write``)
skips the ORM and the threadpool: plain ``sqlite3`` connections used on the event
loop's thread, because a Session and a thread hop cost more than the queries. A write
that would have to wait (another thread or process holds the write lock) is moved to
a worker thread instead, so the loop itself never waits for a lock.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine

from app.settings import ConfigError

_BEGIN_OPTION = "lumina_begin"


class Database:
    """One SQLite file, shared by all request threads of this process."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._busy_timeout_ms = busy_timeout_ms
        prepare_database_file(self.path)
        self.engine = _create_engine(url, busy_timeout_ms=busy_timeout_ms)
        self._writer_engine = self.engine.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
        self._write_lock = threading.Lock()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for queries only; it never takes SQLite's write lock."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock from its first statement.

        Commits when the block ends normally, rolls back when it raises.
        """
        with (
            self._write_lock,
            Session(self._writer_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    async def read[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one read transaction, on the calling (event loop) thread."""
        connection = self._reader
        connection.execute("BEGIN")
        try:
            return work(connection)
        finally:
            connection.execute("COMMIT")

    async def write[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one writing transaction: committed when it returns, else rolled back.

        Done right here when the write lock is free this instant, else in a worker
        thread that waits for it (up to the busy timeout, as every writer does).
        """
        if self._write_lock.acquire(blocking=False):
            try:
                connection = self._writer_now
                try:
                    connection.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                        raise
                else:
                    return _transaction(connection, work)
            finally:
                self._write_lock.release()
        return await anyio.to_thread.run_sync(self._write_waiting, work)

    def _write_waiting[T](self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._write_lock:
            connection = self._writer_waiting
            connection.execute("BEGIN IMMEDIATE")
            return _transaction(connection, work)

    @functools.cached_property
    def _reader(self) -> sqlite3.Connection:
        return self._connect(self._busy_timeout_ms)

    @functools.cached_property
    def _writer_now(self) -> sqlite3.Connection:
        # No busy wait: a lock held elsewhere sends the write to _write_waiting.
        return self._connect(0)

    @functools.cached_property
    def _writer_waiting(self) -> sqlite3.Connection:
        return self._connect(self._busy_timeout_ms)

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        # Opened lazily: backups and migrations use a Database without serving requests.
        connection = sqlite3.connect(
            self.path, timeout=busy_timeout_ms / 1000, check_same_thread=False
        )
        _configure(connection, busy_timeout_ms)
        return connection

    def close(self) -> None:
        """Fold the WAL back into the main file and close every connection."""
        for name in ("_reader", "_writer_now", "_writer_waiting"):
            connection = self.__dict__.pop(name, None)
            if connection is not None:
                connection.close()
        with contextlib.suppress(Exception), self.engine.connect() as conn:
            # Leaves a self-contained file on the volume for whoever opens it next.
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        self.engine.dispose()


def sqlite_path(url: str) -> Path:
    """The file behind a SQLite URL; anything else is a configuration error."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise ConfigError(
            f"DATABASE_URL must be a SQLite URL such as sqlite:////data/lumina.db, "
            f"got the '{parsed.get_backend_name()}' scheme"
        )
    if not parsed.database or parsed.database == ":memory:":
        # Each pooled connection would get its own empty in-memory database.
        raise ConfigError(
            "DATABASE_URL must name a database file (sqlite:////data/lumina.db), "
            "not an in-memory database"
        )
    return Path(parsed.database).absolute()


def prepare_database_file(path: Path) -> None:
    """Make sure the process can create and write the database file and its WAL.

    A fresh volume is owned by root; the chart's ``fsGroup`` gives our group write
    access to the directory, so the file we create must be group-writable too, or a
    later pod running with another UID in the same group could not write it.
    """
    directory = path.parent
    who = f"uid {os.getuid()}, gid {os.getgid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the database directory {directory} ({who}): {exc.strerror}"
        ) from None
    # SQLite also creates -wal and -shm files beside the database, so the directory
    # itself must be writable, not only the file.
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the database directory {directory} is not writable by {who}; "
            "give the volume to this user or group (the chart sets fsGroup: 10001)"
        )
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o660)
    except FileExistsError:
        if not os.access(path, os.R_OK | os.W_OK):
            raise ConfigError(
                f"the database file {path} exists but is not readable and writable by {who}"
            ) from None
        return
    except OSError as exc:
        raise ConfigError(
            f"cannot create the database file {path} ({who}): {exc.strerror}"
        ) from None
    try:
        # The umask would otherwise strip the group-write bit requested above.
        os.fchmod(fd, 0o660)
    finally:
        os.close(fd)


def _create_engine(url: str, *, busy_timeout_ms: int) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        # Readers run on up to 40 threadpool threads; SQLite connections are cheap, so
        # half that many keeps them from queueing behind each other for long. Writers
        # use one connection at a time anyway.
        pool_size=10,
        max_overflow=10,
        pool_timeout=30,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        _configure(dbapi_connection, busy_timeout_ms)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        kind: Any = conn.get_execution_options().get(_BEGIN_OPTION, "")
        conn.exec_driver_sql(f"BEGIN {kind}".strip())

    return engine


def _configure(connection: sqlite3.Connection, busy_timeout_ms: int) -> None:
    """The pragmas every connection of the app runs with, the ORM's and the raw ones."""
    # Take BEGIN away from the sqlite3 module: the callers decide its kind.
    connection.isolation_level = None
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durable across process crashes in WAL mode; only a power loss can drop
        # the last commits, which is the usual trade for a local volume.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _transaction[T](connection: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    try:
        result = work(connection)
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    # Returned only once committed: a write the client sees acknowledged is on disk.
    connection.execute("COMMIT")
    return result
