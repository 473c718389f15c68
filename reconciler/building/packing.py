"""Packing a build context: a tar of exactly the files the digest covers.

Who calls it: :mod:`reconciler.building.builds`. Docker is handed this tar instead of a
directory, so the image built under a digest's tag holds precisely the files that made
the digest — the same in work-tree and commit mode (commit mode packs blobs from git,
never the dirty work tree). A file that changed between planning and packing makes the
build stop with :class:`ContextChangedError`; the next cycle plans the new content.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import tempfile
from collections.abc import Callable
from typing import IO

from reconciler import errors, services
from reconciler.inputs import contexts, trees

#: Where a Dockerfile that lives outside the context is placed inside the tar.
OUTSIDE_DOCKERFILE = ".lumina.Dockerfile"
_SPOOL_BYTES = 64 * 1024 * 1024


class ContextChangedError(errors.TemporaryError):
    """A file changed while its context was being packed."""


def _tarinfo(name: str, entry: trees.FileEntry, content: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    # Fixed owner and time: the tar's bytes depend on content and modes only.
    info.uid = info.gid = 0
    info.mtime = 0
    if entry.mode == trees.SYMLINK:
        info.type = tarfile.SYMTYPE
        info.linkname = content.decode("utf-8", "surrogateescape")
        info.mode = 0o777
    else:
        info.size = len(content)
        info.mode = 0o755 if entry.mode == trees.EXECUTABLE else 0o644
    return info


def pack(
    plugin: services.ServicePlugin,
    inputs: contexts.ServiceInputs,
    source: contexts.Source,
    *,
    dockerfile_filter: Callable[[bytes], bytes] | None = None,
) -> tuple[IO[bytes], str]:
    """A tar of ``inputs.files`` relative to the context, and the Dockerfile's name in it;
    ``dockerfile_filter`` rewrites the Dockerfile for a builder that reads less of it."""
    context = posixpath.normpath(plugin.context)
    base = "" if context == "." else context + "/"
    dockerfile = posixpath.normpath(plugin.dockerfile)
    dockerfile_name = dockerfile[len(base) :] if dockerfile.startswith(base) else OUTSIDE_DOCKERFILE
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    with tarfile.open(fileobj=spool, mode="w") as archive:
        for path in sorted(inputs.files):
            entry = inputs.files[path]
            content = source.raw(path)
            if content is None or trees.blob_oid(content) != entry.oid:
                raise ContextChangedError(
                    f"{path} changed while {plugin.name}'s build context was packed",
                    hint="the next cycle builds the new content",
                    retry_after=0.5,
                )
            name = path[len(base) :] if path.startswith(base) else OUTSIDE_DOCKERFILE
            if dockerfile_filter is not None and name == dockerfile_name:
                content = dockerfile_filter(content)
            info = _tarinfo(name, entry, content)
            archive.addfile(info, None if info.type == tarfile.SYMTYPE else io.BytesIO(content))
    spool.seek(0)
    return spool, dockerfile_name
