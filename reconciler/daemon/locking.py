"""One daemon per repository: an exclusive lock on ``.lumina/daemon.lock``.

Who calls it: ``lumina-reconcile run``/``once``. The kernel releases an ``flock`` when the
process dies, even by SIGKILL, so a crashed daemon never leaves a stale lock. The file
holds the owner's PID, so a second daemon can say whom it found.
"""

from __future__ import annotations

import fcntl
import os
import pathlib
import time
from typing import IO

from reconciler import errors

LOCK_FILE = "daemon.lock"
# holder() (status, stop) takes a shared lock for a moment to probe: a start that meets
# it must not refuse, so a busy lock is retried this long before it counts as held.
PROBE_GRACE_SECONDS = 1.0


class AlreadyRunningError(errors.PermanentError):
    def __init__(self, pid: str, path: pathlib.Path) -> None:
        super().__init__(
            f"another lumina-reconcile (PID {pid or 'unknown'}) already reconciles this "
            f"repository (lock {path})",
            hint=f"stop it first: lumina-reconcile stop, or kill {pid}" if pid else "",
        )
        self.pid = pid


class RepositoryLock:
    def __init__(self, state_dir: pathlib.Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    def acquire(self, grace_seconds: float = PROBE_GRACE_SECONDS) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 — held until release
        deadline = time.monotonic() + grace_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                handle.seek(0)
                pid = handle.read().strip()
                handle.close()
                # The file may still name a daemon that died (a probe held the lock, not
                # it): only a live PID is named as the holder.
                raise AlreadyRunningError(pid if _alive(pid) else "", self.path) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def holder(state_dir: pathlib.Path) -> int | None:
    """PID of the daemon holding the lock, or None when none does."""
    path = state_dir / LOCK_FILE
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = handle.read().strip()
            return int(text) if text.isdigit() else None
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
