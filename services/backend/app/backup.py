"""Online backups of the SQLite database: create, list, restore — ``python -m app.backup``.

Who calls it: the reconciler, by exec in the running backend pod, before every upgrade
that restarts the backend (``create --label rev<N>``), and operators through
``lumina-reconcile db backups|restore``. It runs beside the serving process on the same
volume, so everything here is online: SQLite's backup API copies a consistent snapshot
while requests keep reading and writing (the app uses WAL), and a restore copies a
backup into the live database under SQLite's own locks, then migrates it to the schema
the running code expects.

Backups live in ``backups/`` beside the database file (``/data/backups`` in the chart):
the same volume, so they survive pod restarts and upgrades. Each one is a complete,
self-contained SQLite file named ``lumina-<UTC time>-<label>.db``, checked with
``PRAGMA integrity_check`` before it is kept; only the newest ``--keep`` are kept.
Before a restore overwrites the database, the database as it was is itself backed up
(label ``pre-restore``), so a restore of the wrong backup loses nothing.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil
import sqlite3
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from app.sqlite_urls import sqlite_file

# SQLAlchemy, pydantic and Alembic (app.database, app.migrating) are imported by
# `restore` and `revert` only: `create` runs before every backend upgrade and
# `trial-copy` in every trial start, and on the pod's half CPU those imports would be
# most of their time.

DEFAULT_KEEP = 5
PRE_RESTORE = "pre-restore"
#: Free space a backup must leave on the volume, so the live database can still grow.
RESERVE_BYTES = 16 * 1024 * 1024
_NAME = re.compile(r"^lumina-(\d{8}T\d{6}\.\d{3}Z)(?:-([A-Za-z0-9._-]+))?\.db$")
_TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Waits for the app's writer instead of failing while it holds SQLite's write lock.
_BUSY_TIMEOUT_S = 30.0


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Backup:
    """One backup file in the backup directory."""

    path: Path
    created: datetime.datetime
    label: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "created": self.created.isoformat().replace("+00:00", "Z"),
            "label": self.label,
            "size": self.size,
        }


@dataclasses.dataclass(frozen=True)
class Restored:
    """What a restore did: the backup it copied in, and the copy of what it replaced."""

    backup: Backup
    previous: Backup
    revisions: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "restored": self.backup.to_json(),
            "previous": self.previous.to_json(),
            "schema": list(self.revisions),
        }


def database_path(url: str | None = None) -> Path:
    """The live database file: ``url``, else ``DATABASE_URL`` as the app reads it."""
    return sqlite_file(url or os.environ.get("DATABASE_URL") or "sqlite:////data/lumina.db")


def backup_dir(database: Path) -> Path:
    return database.parent / "backups"


def _parse(path: Path) -> Backup | None:
    found = _NAME.match(path.name)
    if found is None:
        return None
    created = datetime.datetime.strptime(found.group(1), _TIME_FORMAT).replace(tzinfo=datetime.UTC)
    return Backup(path, created, found.group(2) or "")


def list_backups(directory: Path) -> list[Backup]:
    """Every backup in ``directory``, newest first (half-written ones are not listed)."""
    if not directory.is_dir():
        return []
    found = [backup for path in directory.iterdir() if (backup := _parse(path)) is not None]
    return sorted(found, key=lambda backup: backup.created, reverse=True)


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    uri = path.absolute().as_uri() + ("?mode=ro" if read_only else "")
    connection = sqlite3.connect(uri, uri=True, timeout=_BUSY_TIMEOUT_S)
    try:
        yield connection
    finally:
        connection.close()


def integrity(path: Path, *, read_only: bool = True) -> str:
    """``PRAGMA integrity_check`` of ``path``: ``ok``, or the problems SQLite found.

    The live database is opened read-write: a read-only open of a WAL database fails
    when no other connection keeps its shared-memory file.
    """
    try:
        with _connect(path, read_only=read_only) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"not a readable SQLite database: {exc}"
    return "; ".join(str(row[0]) for row in rows)


def _new_path(directory: Path, label: str, now: datetime.datetime) -> Path:
    label = _UNSAFE.sub("-", label).strip("-.")[:60]
    while True:
        stamp = now.strftime(_TIME_FORMAT)[:-4] + "Z"  # milliseconds
        path = directory / (f"lumina-{stamp}-{label}.db" if label else f"lumina-{stamp}.db")
        if not path.exists():
            return path
        now += datetime.timedelta(milliseconds=1)


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o770, parents=True, exist_ok=True)
    except OSError as exc:
        raise BackupError(
            f"cannot create the backup directory {directory}: {exc.strerror}"
        ) from None


def create(
    database: Path,
    *,
    label: str = "",
    keep: int = DEFAULT_KEEP,
    now: datetime.datetime | None = None,
    reserve: int = RESERVE_BYTES,
) -> Backup:
    """Copy the live database into a new, verified backup; drop all but the newest ``keep``.

    Refused when the copy would leave less than ``reserve`` bytes free on the volume:
    the backups share it with the live database, which must still be able to grow.
    """
    if keep < 1:
        raise BackupError(f"--keep must be at least 1, got {keep}")
    if not database.is_file():
        raise BackupError(f"there is no database at {database} to back up")
    directory = backup_dir(database)
    _make_directory(directory)
    wal = database.with_name(database.name + "-wal")
    needed = database.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    free = shutil.disk_usage(directory).free
    if free - needed < reserve:
        raise BackupError(
            f"not enough room on the volume of {directory} for a backup: {free} bytes free, "
            f"the copy needs up to {needed} and {reserve} must stay free for the database; "
            f"remove old backups or grow the volume"
        )
    final = _new_path(directory, label, now or datetime.datetime.now(datetime.UTC))
    # Written under a name `list_backups` ignores, renamed only once verified: a crash
    # or a full volume midway never leaves something that looks like a good backup.
    partial = final.with_name(final.name + ".partial")
    try:
        with _connect(database) as source, _connect(partial) as target:
            source.backup(target)
            # A self-contained file: no -wal beside it to lose when it is copied away.
            target.execute("PRAGMA journal_mode=DELETE")
        os.chmod(partial, 0o660)
        checked = integrity(partial)
        if checked != "ok":
            raise BackupError(f"the new backup of {database} failed its integrity check: {checked}")
        os.replace(partial, final)
    except sqlite3.Error as exc:
        raise BackupError(f"backing up {database} failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"writing the backup {final} failed: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    _prune(directory, keep)
    backup = _parse(final)
    assert backup is not None
    return backup


def _prune(directory: Path, keep: int) -> None:
    for old in list_backups(directory)[keep:]:
        old.path.unlink(missing_ok=True)


def choose(directory: Path, name: str | None) -> Backup:
    """The backup called ``name``; without one the newest that is not a pre-restore copy."""
    backups = list_backups(directory)
    if name is None:
        candidates = [backup for backup in backups if backup.label != PRE_RESTORE]
        if not candidates:
            raise BackupError(f"there is no backup in {directory} to restore")
        return candidates[0]
    for backup in backups:
        if name in (backup.name, backup.path.stem):
            return backup
    known = ", ".join(backup.name for backup in backups) or "none"
    raise BackupError(f"no backup named {name!r} in {directory} (there are: {known})")


def _schema_revisions(path: Path) -> tuple[str, ...]:
    with _connect(path, read_only=True) as connection:
        has_table = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone()
        if has_table is None:
            return ()
        return tuple(
            str(row[0]) for row in connection.execute("SELECT version_num FROM alembic_version")
        )


def _check_schema_known(backup: Backup) -> None:
    """Refuse a backup whose schema is newer than this code: it could not serve it."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    from app import migrating

    scripts = ScriptDirectory.from_config(migrating.alembic_config())
    for revision in _schema_revisions(backup.path):
        try:
            scripts.get_revision(revision)
        except CommandError:
            raise BackupError(
                f"{backup.name} has schema revision {revision}, which this backend version "
                "does not know (it was made by a newer version); deploy that version first"
            ) from None


def restore(database: Path, name: str | None = None) -> Restored:
    """Copy a backup into the live database, keeping a copy of what it replaces.

    The copy runs under SQLite's locks, so the serving process sees either the old
    database or the restored one, never a mix; then the restored data is migrated to
    the schema the running code expects (a backup made before an upgrade is older).
    """
    backup = choose(backup_dir(database), name)
    checked = integrity(backup.path)
    if checked != "ok":
        raise BackupError(f"{backup.name} failed its integrity check, not restoring it: {checked}")
    _check_schema_known(backup)
    previous = create(database, label=PRE_RESTORE, keep=max(DEFAULT_KEEP, 2))
    try:
        with _connect(backup.path, read_only=True) as source, _connect(database) as target:
            source.backup(target)
    except sqlite3.Error as exc:
        raise BackupError(
            f"restoring {backup.name} into {database} failed: {exc}; the database was not "
            f"changed, or restore {previous.name} to be sure"
        ) from None
    from app import migrating
    from app.database import Database

    live = Database(f"sqlite:///{database}")
    try:
        migrating.upgrade(live)
        revisions = tuple(sorted(migrating.current_revisions(live)))
    finally:
        live.engine.dispose()
    checked = integrity(database, read_only=False)
    if checked != "ok":
        raise BackupError(
            f"after restoring {backup.name}, {database} fails its integrity check: {checked}"
        )
    return Restored(backup, previous, revisions)


def trial_copy(target: Path, source: Path | None) -> dict[str, object]:
    """Put a copy of ``source`` (a backup) at ``target`` for a trial start of a new image.

    The trial pod mounts the live volume read-only, so the copy is of a backup the
    reconciler just made, never of the live file. Without any backup there is no data
    to try, and the new image starts on an empty database (its migrations still run).
    """
    if source is None:
        return {"copied": None, "to": str(target), "reason": "no backup to copy: empty database"}
    checked = integrity(source)
    if checked != "ok":
        raise BackupError(f"{source} failed its integrity check, not trying on it: {checked}")
    partial = target.with_name(target.name + ".partial")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    except OSError as exc:
        raise BackupError(f"copying {source} to {target} failed: {exc.strerror or exc}") from None
    return {"copied": str(source), "to": str(target), "size": target.stat().st_size}


def _trial_source(database: Path) -> Path | None:
    named = os.environ.get("LUMINA_TRIAL_BACKUP", "")
    if named:
        return Path(named)
    candidates = [b for b in list_backups(backup_dir(database)) if b.label != PRE_RESTORE]
    return candidates[0].path if candidates else None


def revert(database: Path, name: str) -> dict[str, object]:
    """After a failed upgrade: restore backup ``name`` if the live data left its schema.

    Runs in a one-off pod of the previous image while no backend pod runs. A new pod
    that crashed before migrating left the data as it was (its migration ran in one
    transaction, or not at all), and nothing is restored — every write is kept. One that
    migrated left a schema the previous code does not know: the backup made just
    before the upgrade is restored, and the migrated database is kept as pre-restore.
    """
    backup = choose(backup_dir(database), Path(name).name)
    wanted = _schema_revisions(backup.path)
    live = _schema_revisions_live(database)
    if live == wanted:
        return {
            "restored": None,
            "reason": f"the database is still at the backup's schema "
            f"({', '.join(wanted) or 'empty'}): nothing to restore",
        }
    done = restore(database, backup.name)
    return {
        **done.to_json(),
        "reason": f"the database had moved to schema {', '.join(live) or 'empty'}; "
        f"restored the backup at {', '.join(wanted) or 'empty'}",
    }


def _schema_revisions_live(database: Path) -> tuple[str, ...]:
    # Read-write: a read-only open of a WAL database fails without its shared memory.
    with _connect(database) as connection:
        has_table = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone()
        if has_table is None:
            return ()
        rows = connection.execute("SELECT version_num FROM alembic_version")
        return tuple(sorted(str(row[0]) for row in rows))


def export(database: Path, name: str | None) -> str:
    """One backup for ``db backups pull``: a JSON line, then its bytes in base64."""
    backup = choose(backup_dir(database), name)
    data = backup.path.read_bytes()
    header = {"backup": backup.to_json(), "sha256": hashlib.sha256(data).hexdigest()}
    return json.dumps(header) + "\n" + base64.b64encode(data).decode("ascii")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.backup", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    commands = parser.add_subparsers(dest="command", required=True)
    made = commands.add_parser("create", help="back up the live database now")
    made.add_argument("--label", default="", help="a word for the name, e.g. rev12")
    made.add_argument("--keep", type=int, default=DEFAULT_KEEP, help="newest backups kept")
    commands.add_parser("list", help="the backups, newest first")
    restored = commands.add_parser("restore", help="copy a backup into the live database")
    restored.add_argument("name", nargs="?", help="backup file name (default: the newest)")
    trial = commands.add_parser("trial-copy", help="copy a backup for a trial start")
    trial.add_argument("--to", required=True, type=Path, help="where the copy goes")
    reverted = commands.add_parser(
        "revert", help="restore a backup if the database left its schema (failed upgrade)"
    )
    reverted.add_argument("name", help="backup file name or path")
    exported = commands.add_parser("export", help="print a backup: JSON line, then base64")
    exported.add_argument("name", nargs="?", help="backup file name (default: the newest)")
    return parser


def _human(backup: Backup) -> str:
    return f"{backup.name}  {backup.size} bytes  {backup.created:%Y-%m-%d %H:%M:%S} UTC"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        database = database_path()
        if args.command == "create":
            made = create(database, label=args.label, keep=args.keep)
            print(
                json.dumps(made.to_json())
                if args.json
                else f"created {made.path} ({made.size} bytes, integrity ok)"
            )
        elif args.command == "list":
            backups = list_backups(backup_dir(database))
            if args.json:
                print(json.dumps([backup.to_json() for backup in backups]))
            else:
                for backup in backups:
                    print(_human(backup))
        elif args.command == "trial-copy":
            print(json.dumps(trial_copy(args.to, _trial_source(database))))
        elif args.command == "revert":
            print(json.dumps(revert(database, args.name)))
        elif args.command == "export":
            print(export(database, args.name))
        else:
            done = restore(database, args.name)
            print(
                json.dumps(done.to_json())
                if args.json
                else f"restored {done.backup.name} into {database} (integrity ok, schema "
                f"{','.join(done.revisions) or 'empty'}); the database as it was is kept "
                f"as {done.previous.name}"
            )
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # ConfigError and the like: one line, never a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
