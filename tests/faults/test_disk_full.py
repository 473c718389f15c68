"""A nearly full disk before a build: a clear error naming the filesystem, nothing deployed.

The clone's state directory is put on a 2 MiB tmpfs filled to the last 64 KiB (a real
full filesystem; mounting needs root, which CI has), and a backend change is committed.
``once`` must refuse before building or touching Helm, name the full filesystem with its
numbers, and keep the release as it was; with room again, the same change deploys.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import lumina_stack
import pytest


@pytest.mark.slow
def test_a_full_state_filesystem_blocks_the_cycle_before_any_build(
    workspace: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    mount = tmp_path / "tiny"
    mount.mkdir()
    mounted = lumina_stack.run(
        "mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount), check=False
    )
    assert mounted.returncode == 0, f"mount (util-linux) needs root: {mounted.stderr}"
    env = {"LUMINA_STATE_DIR": str(mount / "state"), "LUMINA_MIN_FREE_DISK_MB": "1"}
    try:
        code, output = lumina_stack.once(workspace, env=env)
        assert code == 0, output
        before = lumina_stack.helm_revision()
        lumina_stack.change_backend(workspace, "built once the disk has room")
        filler = mount / "filler"
        stats = os.statvfs(mount)
        # Leave 32 KiB: the state file still fits, a cycle's 1 MiB minimum does not.
        filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - 32 * 2**10))
        lumina_stack.count("faults injected")

        code, output = lumina_stack.once(workspace, env=env)
        assert code != 0, output
        assert "not enough disk space" in output, output[-3000:]
        assert str(mount / "state") in output, output[-3000:]
        assert "building lumina/backend" not in output, output[-3000:]
        assert lumina_stack.helm_revision() == before, "nothing may be deployed"
        lumina_stack.assert_no_pending_release()

        filler.unlink()
        code, output = lumina_stack.once(workspace, env=env)
        assert code == 0, output
        assert lumina_stack.helm_revision() == before + 1
        lumina_stack.count("faults survived")
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
