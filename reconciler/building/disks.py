"""Room on disk before a cycle writes anything: refuse early, with the numbers.

Who calls it: the cycle's build and upgrade actions, before they write. A build
that runs out of space half-way leaves dangling layers and an error from deep inside the
engine; a state file that cannot be written after a deploy forgets what was deployed.
Checking the state directory, the build-context spool and the Docker engine's data root
first keeps the cluster untouched and says which filesystem to clean up.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping

from reconciler import errors


class DiskFullError(errors.TemporaryError):
    """A filesystem the cycle writes to is (nearly) full."""


def _existing(path: pathlib.Path) -> pathlib.Path:
    """The path itself or its nearest existing parent (a state dir may not exist yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return pathlib.Path("/")


def free_bytes(path: pathlib.Path) -> int:
    """Bytes an unprivileged writer may still use on ``path``'s filesystem."""
    stats = os.statvfs(_existing(path))
    return stats.f_bavail * stats.f_frsize


def shortages(places: Mapping[str, pathlib.Path], minimum_bytes: int) -> list[str]:
    """One line per place whose filesystem has less than ``minimum_bytes`` free."""
    short = []
    for what, path in places.items():
        free = free_bytes(path)
        if free < minimum_bytes:
            short.append(
                f"{what} ({path}): {free / 2**20:.1f} MiB free, "
                f"{minimum_bytes / 2**20:.0f} MiB needed"
            )
    return short


def ensure_room(places: Mapping[str, pathlib.Path], minimum_bytes: int) -> None:
    """Raise :class:`DiskFullError` naming every filesystem that is too full."""
    short = shortages(places, minimum_bytes)
    if short:
        raise DiskFullError(
            "not enough disk space to build and deploy: " + "; ".join(short),
            hint="free space there (docker image prune, old files) or lower "
            "LUMINA_MIN_FREE_DISK_MB; nothing was changed, the next cycle checks again",
            retry_after=60,
        )
