"""``db restore`` takes the daemon's lock: with a real lock holder it refuses, naming it.

A real process holds the real ``flock``; the restore is refused before it reaches any
cluster (none is needed for the test to fail without the lock).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap


def test_db_restore_is_refused_while_a_daemon_holds_the_lock(project: pathlib.Path) -> None:
    state_dir = project / ".lumina"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import pathlib, sys
            from reconciler.daemon import locking
            lock = locking.RepositoryLock(pathlib.Path({str(state_dir)!r}))
            lock.acquire()
            print("locked", flush=True)
            sys.stdin.read()
            """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", "db", "restore", "--repo", str(project)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)
    assert result.returncode != 0
    assert f"PID {holder.pid}" in result.stderr
    assert "db restore refused" in result.stderr
    assert "Traceback" not in result.stderr
