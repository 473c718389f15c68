"""Listing the work tree as it is on disk, with a stat cache so re-listing is cheap.

Who calls it: :mod:`reconciler.inputs.contexts` for work-tree mode. File contents are hashed
only when a file's (inode, size, mtime, ctime, mode) changed since the last listing; a file
modified within the last two seconds is never cached, since a second write within the
same timestamp tick would otherwise go unnoticed (git's "racy" rule).

A daemon also keeps a :class:`ListingMemo`: the listings of its last cycle, corrected
by the paths its watcher reported, so a one-file edit in a 50,000-file context does not
walk and stat 50,000 files again. Lost events (a rescan) or an old memo mean a full walk.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import stat
import time
from collections.abc import Callable, Iterable
from typing import Any

from reconciler.inputs import trees

_RACY_NS = 2_000_000_000
_CACHE_VERSION = 2
_Key = tuple[int, int, int, int, int]


class HashCache:
    """Blob ids of files keyed by their stat signature, optionally kept on disk."""

    def __init__(self, path: pathlib.Path | None = None) -> None:
        self._path = path
        self._entries: dict[str, tuple[_Key, str]] = {}
        self._dirty = False
        if path is not None:
            self._load(path)

    def _load(self, path: pathlib.Path) -> None:
        try:
            raw: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # a missing or damaged cache only costs time
        if raw.get("version") != _CACHE_VERSION:
            return
        for name, (ino, size, mtime, ctime, mode, oid) in raw.get("entries", {}).items():
            self._entries[name] = ((ino, size, mtime, ctime, mode), oid)

    def lookup(self, name: str, key: _Key) -> str | None:
        cached = self._entries.get(name)
        return cached[1] if cached is not None and cached[0] == key else None

    def store(self, name: str, key: _Key, oid: str) -> None:
        self._entries[name] = (key, oid)
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically, if it changed and has a home."""
        if self._path is None or not self._dirty:
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "version": _CACHE_VERSION,
            "entries": {name: [*key, oid] for name, (key, oid) in self._entries.items()},
        }
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self._path)
        self._dirty = False


def _entry(
    full: str, name: str, st: os.stat_result, cache: HashCache, now_ns: int
) -> trees.FileEntry | None:
    if stat.S_ISLNK(st.st_mode):
        return trees.FileEntry(trees.SYMLINK, trees.blob_oid(os.fsencode(os.readlink(full))))
    if not stat.S_ISREG(st.st_mode):
        return None  # sockets, fifos and devices are not sent in a build context
    mode = trees.EXECUTABLE if st.st_mode & stat.S_IXUSR else trees.REGULAR
    # ctime too: a same-size rewrite that restores the mtime still moves the ctime.
    key: _Key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
    oid = cache.lookup(name, key)
    if oid is None:
        with open(full, "rb") as handle:
            oid = trees.blob_oid(handle.read())
        if now_ns - max(st.st_mtime_ns, st.st_ctime_ns) > _RACY_NS:
            cache.store(name, key, oid)
    return trees.FileEntry(mode, oid)


def list_directory(
    repo: pathlib.Path,
    prefix: str,
    *,
    cache: HashCache,
    prune: Callable[[str], bool] = lambda _relative: False,
    excluded: Callable[[str], bool] = lambda _relative: False,
) -> dict[str, trees.FileEntry]:
    """Files below ``repo/prefix`` keyed by repository-relative path.

    ``prune`` and ``excluded`` receive paths relative to ``prefix``: a pruned directory
    is not descended into, an excluded file is left out.
    """
    root = repo / prefix
    listing: dict[str, trees.FileEntry] = {}
    base = "" if prefix in ("", ".") else prefix.rstrip("/") + "/"
    now_ns = time.time_ns()
    pending = [""]
    while pending:
        relative_dir = pending.pop()
        try:
            scanner = os.scandir(root / relative_dir if relative_dir else root)
        except (FileNotFoundError, NotADirectoryError):
            continue  # removed while we looked
        with scanner:
            for item in scanner:
                relative = f"{relative_dir}{item.name}"
                try:
                    if item.is_dir(follow_symlinks=False):
                        if not prune(relative):
                            pending.append(relative + "/")
                        continue
                    if excluded(relative):
                        continue
                    entry = _entry(
                        item.path, base + relative, item.stat(follow_symlinks=False), cache, now_ns
                    )
                except FileNotFoundError:
                    continue
                if entry is not None:
                    listing[base + relative] = entry
    return listing


_Filter = Callable[[str], bool]


def _never(_relative: str) -> bool:
    return False


@dataclasses.dataclass
class _Remembered:
    listing: dict[str, trees.FileEntry]
    #: repository-relative paths reported since ``listing`` was read
    pending: set[str]


class ListingMemo:
    """Listings of the previous cycle, kept correct by the watcher's changed paths.

    Who calls it: the daemon (:mod:`reconciler.daemon.running`) feeds it every batch of
    changed paths before a cycle; :class:`WorktreeSource` reads through it. A listing is
    remembered per (prefix, filters): the filters are memoised per ``.dockerignore``
    content, so an edited ``.dockerignore`` gives new filters and a fresh walk.
    """

    #: Beyond this many changed paths, walking again is cheaper than patching.
    MAX_PATCHED = 2_000

    def __init__(self, max_age_seconds: float = 600.0) -> None:
        self._remembered: dict[tuple[str, _Filter, _Filter], _Remembered] = {}
        # A safety net for events the kernel never delivered without saying so.
        self._max_age = max_age_seconds
        self._walked_at = time.monotonic()

    def touched(self, paths: Iterable[str]) -> None:
        """Paths the watcher saw change (a directory stands for everything below it)."""
        changed = set(paths)
        if not changed:
            return
        for remembered in self._remembered.values():
            remembered.pending |= changed

    def forget(self) -> None:
        """Events may have been lost: the next listing walks the whole tree."""
        self._remembered.clear()
        self._walked_at = time.monotonic()

    def list(
        self,
        repo: pathlib.Path,
        prefix: str,
        cache: HashCache,
        prune: _Filter,
        excluded: _Filter,
    ) -> dict[str, trees.FileEntry]:
        if time.monotonic() - self._walked_at > self._max_age:
            self.forget()
        key = (prefix, prune, excluded)
        remembered = self._remembered.get(key)
        if (
            remembered is None
            or len(remembered.pending) > self.MAX_PATCHED
            or not _patch(repo, prefix, remembered, cache=cache, prune=prune, excluded=excluded)
        ):
            # Filters of an older .dockerignore for this prefix will not come back.
            for stale in [other for other in self._remembered if other[0] == prefix]:
                del self._remembered[stale]
            listing = list_directory(repo, prefix, cache=cache, prune=prune, excluded=excluded)
            remembered = self._remembered[key] = _Remembered(listing, set())
        # A copy: the caller's plans keep their listing while the memo moves on.
        return dict(remembered.listing)


def _below(directory: str, check: _Filter) -> _Filter:
    """A context-relative filter seen from inside ``directory``."""
    return lambda inner: check(f"{directory}/{inner}")


def _forget(listing: dict[str, trees.FileEntry], path: str) -> None:
    """Drop ``path`` from the listing, and everything below it if it was a directory."""
    if listing.pop(path, None) is None:
        below = path + "/"
        for name in [name for name in listing if name.startswith(below)]:
            del listing[name]


def _relist(
    repo: pathlib.Path,
    path: str,
    relative: str,
    listing: dict[str, trees.FileEntry],
    *,
    cache: HashCache,
    prune: _Filter,
    excluded: _Filter,
    now_ns: int,
) -> None:
    """Put into the listing what ``path`` is now: nothing when it is gone."""
    full = repo / path
    try:
        st = full.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return  # deleted
    if stat.S_ISDIR(st.st_mode):
        if not prune(relative):
            listing.update(
                list_directory(
                    repo,
                    path,
                    cache=cache,
                    prune=_below(relative, prune),
                    excluded=_below(relative, excluded),
                )
            )
        return
    if excluded(relative):
        return
    try:
        entry = _entry(str(full), path, st, cache, now_ns)
    except FileNotFoundError:
        return
    if entry is not None:
        listing[path] = entry


def _patch(
    repo: pathlib.Path,
    prefix: str,
    remembered: _Remembered,
    *,
    cache: HashCache,
    prune: _Filter,
    excluded: _Filter,
) -> bool:
    """Apply the pending paths to the listing; False when only a full walk will do."""
    base = "" if prefix in ("", ".") else prefix.rstrip("/") + "/"
    if not remembered.pending:
        return True
    listing = remembered.listing
    now_ns = time.time_ns()
    for path in sorted(remembered.pending):
        if base and (path == base[:-1] or base.startswith(path + "/")):
            return False  # the context directory itself (or a parent) moved
        if base and not path.startswith(base):
            continue
        relative = path[len(base) :]
        parts = relative.split("/")
        if any(prune("/".join(parts[:depth])) for depth in range(1, len(parts))):
            continue  # inside a directory the build never sees
        _forget(listing, path)
        _relist(
            repo,
            path,
            relative,
            listing,
            cache=cache,
            prune=prune,
            excluded=excluded,
            now_ns=now_ns,
        )
    remembered.pending.clear()
    return True


class WorktreeSource:
    """The work tree on disk, as a :class:`reconciler.inputs.contexts.Source`."""

    def __init__(
        self,
        repo: pathlib.Path,
        cache: HashCache | None = None,
        memo: ListingMemo | None = None,
    ) -> None:
        self.repo = repo
        self.cache = cache or HashCache()
        self.memo = memo
        self.label = f"the work tree of {repo}"

    def list(
        self,
        prefix: str,
        *,
        prune: Callable[[str], bool] = _never,
        excluded: Callable[[str], bool] = _never,
    ) -> dict[str, trees.FileEntry]:
        if self.memo is not None:
            return self.memo.list(self.repo, prefix, self.cache, prune, excluded)
        return list_directory(self.repo, prefix, cache=self.cache, prune=prune, excluded=excluded)

    def read(self, path: str) -> bytes | None:
        try:
            return (self.repo / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def raw(self, path: str) -> bytes | None:
        full = self.repo / path
        try:
            if full.is_symlink():
                return os.fsencode(os.readlink(full))
            return full.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def entry(self, path: str) -> trees.FileEntry | None:
        full = self.repo / path
        try:
            st = full.lstat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _entry(str(full), path, st, self.cache, time.time_ns())
