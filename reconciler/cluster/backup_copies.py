"""Backups out of the pod: a service's backup copied to this machine, checked on arrival.

Who calls it: ``lumina-reconcile db backups pull`` and the upgrade action (when the
``backup_copies_dir`` setting names a directory, every pre-upgrade backup is copied
there too). The plugin's export command prints the backup's description and sha256 on
one line, then its bytes in base64; the copy is written under a partial name, checked
(size, sha256, SQLite's ``integrity_check``) and only then given its own name, so a
half-copied file never looks like a backup. Only the newest ``keep`` copies stay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import pathlib
import sqlite3
from collections.abc import Sequence

from reconciler import errors, services
from reconciler.cluster import kube, pod_commands

EXPORT_TIMEOUT_SECONDS = 600.0
SUFFIX = ".db"


class BackupCopyError(errors.PermanentError):
    """A backup could not be copied out, or arrived damaged."""


def _integrity(path: pathlib.Path) -> str:
    try:
        with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True) as connection:
            rows = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"not a readable SQLite database: {exc}"
    return "; ".join(str(row[0]) for row in rows)


def receive(printed: str, directory: pathlib.Path) -> pathlib.Path:
    """Write what an export printed into ``directory``, verified; the file's path."""
    header_line, _, body = printed.partition("\n")
    try:
        header = json.loads(header_line)
        name = pathlib.PurePath(str(header["backup"]["name"])).name
        digest = str(header["sha256"])
        data = base64.b64decode(body.strip(), validate=True)
    except (json.JSONDecodeError, KeyError, TypeError, binascii.Error) as exc:
        raise BackupCopyError(
            f"the export printed something that is not a backup: {exc}",
            hint="the deployed image may predate `app.backup export`; upgrade it first",
        ) from exc
    if not name.endswith(SUFFIX) or name.startswith("."):
        raise BackupCopyError(f"the export named an unexpected file {name!r}")
    if hashlib.sha256(data).hexdigest() != digest:
        raise BackupCopyError(f"{name} arrived damaged: its sha256 does not match the pod's")
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    partial = directory / f".{name}.partial"
    try:
        partial.write_bytes(data)
        os.chmod(partial, 0o600)  # a database of users' data: the owner's only
        checked = _integrity(partial)
        if checked != "ok":
            raise BackupCopyError(f"{name} fails SQLite's integrity check on arrival: {checked}")
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)
    return final


def prune(directory: pathlib.Path, keep: int) -> list[pathlib.Path]:
    """Keep the newest ``keep`` copies (their names sort by creation time); the removed."""
    copies = sorted(p for p in directory.glob(f"lumina-*{SUFFIX}") if p.is_file())
    removed = copies[: max(0, len(copies) - keep)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def pull(
    cluster: kube.Connection,
    namespace: str,
    plugin: services.ServicePlugin,
    name: str | None,
    directory: pathlib.Path,
) -> pathlib.Path:
    """Copy backup ``name`` (the newest without one) of ``plugin``'s service here."""
    commands = plugin.database
    if commands is None or not commands.export:
        raise BackupCopyError(f"service {plugin.name} declares no export of its backups")
    argv: Sequence[str] = [*commands.export, *([name] if name else [])]
    printed = pod_commands.run_in_service(
        cluster, namespace, plugin.values_key, argv, timeout=EXPORT_TIMEOUT_SECONDS
    )
    return receive(printed, directory)
