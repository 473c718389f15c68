"""File listings of a repository at one moment: the data every digest is made from.

A listing maps a repository-relative POSIX path to a :class:`FileEntry` holding what
git would record for it: the mode (regular, executable or symlink) and the git blob id
of its content (for a symlink, of its target). Using git's own object ids makes a
work-tree listing and a commit listing of the same content identical, so committing
an edit that is already deployed rebuilds nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Final

REGULAR: Final = "100644"
EXECUTABLE: Final = "100755"
SYMLINK: Final = "120000"


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
    mode: str
    oid: str


#: repository-relative POSIX path -> entry
Listing = Mapping[str, FileEntry]


def blob_oid(content: bytes) -> str:
    """The id git gives a blob with this content (``git hash-object``)."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(b"blob %d\0" % len(content))
    digest.update(content)
    return digest.hexdigest()


def under(listing: Listing, prefix: str) -> dict[str, FileEntry]:
    """The entries below directory ``prefix``, keyed relative to it."""
    if prefix in ("", "."):
        return dict(listing)
    start = prefix.rstrip("/") + "/"
    return {path[len(start) :]: entry for path, entry in listing.items() if path.startswith(start)}
