"""Backups arriving from the pod: what an export prints becomes a checked file, or an error.

The printed text is made here exactly as ``app.backup export`` prints it (a JSON line,
then base64), from a real SQLite file; nothing else stands in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import pathlib
import sqlite3

import pytest

from reconciler.cluster import backup_copies

NAME = "lumina-20261201T120000.000Z-rev3-before-abc.db"


def _printed(data: bytes, *, name: str = NAME, digest: str | None = None) -> str:
    header = {"backup": {"name": name}, "sha256": digest or hashlib.sha256(data).hexdigest()}
    return json.dumps(header) + "\n" + base64.b64encode(data).decode()


def _database(tmp_path: pathlib.Path) -> bytes:
    path = tmp_path / "source.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE todos (title TEXT)")
        connection.execute("INSERT INTO todos VALUES ('pulled')")
    return path.read_bytes()


def test_a_backup_arrives_whole_checked_and_private(tmp_path: pathlib.Path) -> None:
    path = backup_copies.receive(_printed(_database(tmp_path)), tmp_path / "copies")
    assert path.name == NAME and oct(path.stat().st_mode & 0o777) == "0o600"
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT title FROM todos").fetchall() == [("pulled",)]


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        ("digest", "arrived damaged"),
        ("not-sqlite", "integrity check"),
        ("name", "unexpected file"),
        ("garbage", "not a backup"),
    ],
)
def test_a_damaged_arrival_is_refused_and_leaves_nothing(
    tmp_path: pathlib.Path, damage: str, said: str
) -> None:
    data = _database(tmp_path)
    printed = {
        "digest": _printed(data, digest="0" * 64),
        "not-sqlite": _printed(b"SQLite format 3\x00" + b"\xff" * 4096),
        "name": _printed(data, name="../../etc/passwd"),
        "garbage": "error: no backups\n",
    }[damage]
    with pytest.raises(backup_copies.BackupCopyError, match=said):
        backup_copies.receive(printed, tmp_path / "copies")
    copies = tmp_path / "copies"
    assert not copies.exists() or not any(copies.iterdir()), "nothing half-written is left"


def test_only_the_newest_copies_are_kept(tmp_path: pathlib.Path) -> None:
    for minute in range(5):
        (tmp_path / f"lumina-20261201T12{minute:02d}00.000Z-rev{minute}.db").write_bytes(b"x")
    removed = backup_copies.prune(tmp_path, 2)
    assert len(removed) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "lumina-20261201T120300.000Z-rev3.db",
        "lumina-20261201T120400.000Z-rev4.db",
    ]
