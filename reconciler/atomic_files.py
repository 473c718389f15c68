"""Writing a file so that a crash leaves either its old or its new content, never a torn one.

Who calls it: :mod:`reconciler.cycle.state` (the state file and the file listings beside
it) and :mod:`reconciler.cluster.app_urls` (where the app is). It sits below every other
module so any layer that persists something under ``.lumina/`` can use it.
"""

from __future__ import annotations

import os
import pathlib


def write(path: pathlib.Path, content: str) -> None:
    """Write-to-temp, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    # The rename itself is durable only once the directory is: a power cut must not
    # bring back the previous file after a cycle reported its new one.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
