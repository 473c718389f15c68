"""Reading committed trees with gitpython: commit-mode listings and ``--since`` baselines.

Only this module imports ``git``. Listings come from ``git ls-tree`` so they carry the
same blob ids a work-tree listing computes, and nothing uncommitted can leak into them.
"""

from __future__ import annotations

import pathlib
import threading
from collections.abc import Callable

import git

from reconciler import errors
from reconciler.inputs import trees

_GITLINK = "160000"


def open_repository(path: pathlib.Path) -> git.Repo:
    """The repository at ``path``, or a :class:`RepositoryError` saying what is wrong."""
    try:
        return git.Repo(path)
    except git.NoSuchPathError as exc:
        raise errors.RepositoryError(f"{path} does not exist") from exc
    except git.InvalidGitRepositoryError as exc:
        raise errors.RepositoryError(
            f"{path} is not a git repository", hint="run `git init` there, or pass --repo"
        ) from exc


def resolve(repo: git.Repo, rev: str) -> str:
    """The commit id ``rev`` names."""
    try:
        return str(repo.commit(rev).hexsha)
    except (git.BadName, ValueError, git.GitCommandError) as exc:
        raise errors.RepositoryError(f"no commit named {rev!r} in {repo.working_dir}") from exc


def branch_commit(repo: git.Repo, branch: str) -> str | None:
    """The commit the local ``branch`` points at, or None while it does not exist.

    Read from the ref files on every call (nothing cached), so a watcher sees a commit,
    a reset or a ``git pack-refs`` as soon as git has written it.
    """
    try:
        return str(repo.commit(f"refs/heads/{branch}").hexsha)
    except (git.BadName, ValueError):
        return None


def git_directories(repo: git.Repo) -> tuple[pathlib.Path, pathlib.Path]:
    """This work tree's git directory (HEAD, index, merge state) and the common one (refs).

    They differ only in a linked work tree (``git worktree add``).
    """
    return pathlib.Path(repo.git_dir), pathlib.Path(repo.common_dir)


def unmerged_paths(repo: git.Repo) -> list[str]:
    """Paths of the index with unresolved conflicts (merge, cherry-pick, stash pop…)."""
    try:
        output: str = repo.git.ls_files("--unmerged", "-z")
    except git.GitCommandError as exc:
        raise errors.RepositoryError(
            f"cannot read the index of {repo.working_dir}: {exc.stderr.strip()}"
        ) from exc
    # Records are "<mode> <oid> <stage>\t<path>", one per conflict stage.
    return sorted({record.split("\t", 1)[1] for record in output.split("\0") if record})


def list_commit(repo: git.Repo, commit: str, prefixes: list[str]) -> dict[str, trees.FileEntry]:
    """Files of ``commit`` below ``prefixes``, keyed by repository-relative path."""
    paths = [prefix.rstrip("/") for prefix in prefixes if prefix not in ("", ".")]
    output: str = repo.git.ls_tree("-r", "-z", "--full-tree", commit, "--", *paths)
    listing: dict[str, trees.FileEntry] = {}
    for record in output.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, _kind, oid = meta.split()
        if mode == _GITLINK:
            continue  # a submodule is not part of this repository's content
        listing[path] = trees.FileEntry(trees.REGULAR if mode == "100664" else mode, oid)
    return listing


def read_blob(repo: git.Repo, oid: str) -> bytes:
    data: bytes = repo.odb.stream(bytes.fromhex(oid)).read()
    return data


class CommitSource:
    """One commit's tree, as a :class:`reconciler.inputs.contexts.Source`."""

    def __init__(self, repo: git.Repo, rev: str) -> None:
        self.repo = repo
        self.commit = resolve(repo, rev)
        self.label = f"commit {self.commit[:12]}"
        self._paths: dict[str, trees.FileEntry] | None = None
        # gitpython talks to one long-lived `git cat-file --batch` per repository;
        # builds pack contexts from several threads, so reads take turns.
        self._lock = threading.Lock()

    def _all(self) -> dict[str, trees.FileEntry]:
        if self._paths is None:
            self._paths = list_commit(self.repo, self.commit, [])
        return self._paths

    def list(
        self,
        prefix: str,
        *,
        prune: Callable[[str], bool] = lambda _relative: False,
        excluded: Callable[[str], bool] = lambda _relative: False,
    ) -> dict[str, trees.FileEntry]:
        base = "" if prefix in ("", ".") else prefix.rstrip("/") + "/"
        found: dict[str, trees.FileEntry] = {}
        with self._lock:
            listed = list_commit(self.repo, self.commit, [prefix])
        for path, entry in listed.items():
            relative = path[len(base) :]
            parents = relative.split("/")[:-1]
            if any(prune("/".join(parents[: depth + 1])) for depth in range(len(parents))):
                continue
            if not excluded(relative):
                found[path] = entry
        return found

    def read(self, path: str) -> bytes | None:
        entry = self.entry(path)
        if entry is None:
            return None
        with self._lock:
            return read_blob(self.repo, entry.oid)

    def raw(self, path: str) -> bytes | None:
        return self.read(path)  # a symlink's blob already holds its target

    def entry(self, path: str) -> trees.FileEntry | None:
        with self._lock:
            return self._all().get(path)
