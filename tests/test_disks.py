"""Disk-space checks against real filesystems: a small tmpfs filled to the brim."""

from __future__ import annotations

import pathlib
import subprocess
from collections.abc import Iterator

import pytest

from reconciler import errors
from reconciler.building import disks


@pytest.fixture
def tiny_filesystem(tmp_path: pathlib.Path) -> Iterator[pathlib.Path]:
    """A 2 MiB tmpfs, nearly filled (mounting needs root, which CI has)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"mount (util-linux) failed, root is needed: {done.stderr}"
    try:
        (mount / "filler").write_bytes(b"\0" * (2 * 2**20 - 64 * 2**10))
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_filesystem_is_named_with_its_numbers(tiny_filesystem: pathlib.Path) -> None:
    roomy = tiny_filesystem.parent
    with pytest.raises(disks.DiskFullError) as raised:
        disks.ensure_room(
            {"the state directory": tiny_filesystem / ".lumina", "the spool": roomy}, 2**20
        )
    message = str(raised.value)
    assert "the state directory" in message
    assert str(tiny_filesystem / ".lumina") in message
    assert "MiB free, 1 MiB needed" in message
    assert "the spool" not in message
    assert isinstance(raised.value, errors.TemporaryError)
    assert "LUMINA_MIN_FREE_DISK_MB" in raised.value.hint


def test_enough_room_passes_and_a_missing_directory_counts_its_parent(
    tiny_filesystem: pathlib.Path,
) -> None:
    disks.ensure_room({"a new directory": tiny_filesystem / "not" / "yet"}, 2**10)
    assert disks.free_bytes(tiny_filesystem / "not" / "yet") == disks.free_bytes(tiny_filesystem)
