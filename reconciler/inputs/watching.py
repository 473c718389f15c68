"""Triggers: what tells the reconcile loop to run, and whether git's state lets it.

Who calls it: the reconcile loop (``lumina-reconcile run``). It starts one watcher for
its trigger mode, feeding one :class:`reconciler.inputs.debouncing.Debouncer`, and before each
cycle asks :func:`read_condition` whether the repository is in a state it may deploy.
Only this module imports watchdog.

**Work-tree mode** — :class:`WorktreeWatcher` watches the whole work tree with inotify
(recursively) and pushes repository-relative paths of files created, written, deleted,
moved or chmod-ed. A move pushes both its ends, so an editor's save by writing a
temporary file and renaming it over the target is one change of the target. Reads are
never events (the kernel is not even asked for them): the reconciler hashing the tree and
``docker build`` sending a context must not trigger the next cycle. Ignored always:
anything inside ``.git``, ``.lumina``, ``node_modules``, ``.nox`` or ``__pycache__``
directories, plus what the caller's ``ignore`` says. A path may name a directory (a
directory moved away or deleted); it stands for everything below it.

**Commit mode** — :class:`CommitWatcher` watches ``HEAD``, ``packed-refs`` and
``refs/heads/**`` of the git directory and polls every ``poll_seconds`` as a safety net
(a network file system, a ref written where no watch reaches). It re-reads the tracked
branch with gitpython on every hint and pushes a batch only when the branch's commit id
actually changed — a commit, a pull, a force-reset to an *older* commit alike. The new id
travels in :attr:`reconciler.inputs.debouncing.Batch.commit`; such a push carries no paths.

**Lost events** — when the kernel's inotify queue overflows (watchdog 7 reports it to the
inotify reader and rebuilds its watches, but tells event handlers nothing), when the
watch limit (``fs.inotify.max_user_watches``) stops a new directory being watched, when
handling an event fails, or when the repository directory itself goes away, the watcher
pushes ``rescan``: the loop must then re-read the whole tree instead of trusting paths.
On platforms without inotify, watchdog's native observer is used, without these reports.

**Git states** (:func:`read_condition`), and what each means for a cycle:

============== ====================================== =====================================
condition      detected by                            work-tree mode (commit mode: deploy)
============== ====================================== =====================================
ready          HEAD on the tracked branch, nothing    deploy the saved work tree
               in progress
rebasing       ``rebase-merge/`` or ``rebase-apply/`` pause until the rebase ends
merging        ``MERGE_HEAD`` (conflicted or not)     pause: never deploy a half-merged tree
conflicted     unmerged index entries without a merge pause (cherry-pick, revert, stash pop)
index-locked   ``index.lock``                         pause: git is rewriting files now
detached-head  HEAD holds a commit id, not a branch   deploy: the inner loop follows HEAD
other-branch   HEAD names another branch              deploy: the inner loop follows HEAD
============== ====================================== =====================================

Commit mode never pauses: it always deploys the committed tree of the tracked branch,
whatever HEAD or the work tree are doing (a rebase or merge moves the branch only when it
completes). A paused loop keeps the batches it receives and re-reads the condition until
it is ``ready``; ``.git`` itself is not watched in work-tree mode, so the loop re-checks
on a timer while paused rather than waiting for a file event.
"""

from __future__ import annotations

import dataclasses
import enum
import errno
import functools
import logging
import os
import pathlib
import sys
import threading
from collections.abc import Callable, Iterable, Sequence

from watchdog import events, observers
from watchdog.observers import api

from reconciler import errors, settings
from reconciler.inputs import debouncing, git_reading

logger = logging.getLogger(__name__)

#: Directory names whose contents never trigger a cycle, wherever they sit.
IGNORED_DIRECTORIES = frozenset({".git", ".lumina", "node_modules", ".nox", "__pycache__"})

# Only what changes content or mode; opening and reading files is deliberately absent.
_EVENT_FILTER: list[type[events.FileSystemEvent]] = [
    events.FileCreatedEvent,
    events.DirCreatedEvent,
    events.FileModifiedEvent,
    events.FileAttribEvent,
    events.FileClosedEvent,
    events.FileDeletedEvent,
    events.DirDeletedEvent,
    events.FileMovedEvent,
    events.DirMovedEvent,
]

LostHandler = Callable[[str], None]


class _StopRaceFilter(logging.Filter):
    """Drops the error watchdog logs when its emitter thread polls once more while being
    stopped: nothing is wrong, and a daemon's shutdown should not print an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "called when the thread is inactive" not in record.getMessage()


logging.getLogger("watchdog.observers.inotify").addFilter(_StopRaceFilter())


def builtin_ignored(relative: str) -> bool:
    """Whether a repository-relative path lies in a directory that is never watched."""
    return any(part in IGNORED_DIRECTORIES for part in relative.split("/"))


class _Forwarder(events.FileSystemEventHandler):
    """Hands watchdog's events to a watcher; an exception becomes a lost-events report,
    since a raising handler would end watchdog's dispatch thread and leave us deaf."""

    def __init__(
        self, on_event: Callable[[events.FileSystemEvent], None], on_lost: LostHandler
    ) -> None:
        self._on_event = on_event
        self._on_lost = on_lost
        self._failed_before = False

    def dispatch(self, event: events.FileSystemEvent) -> None:
        try:
            self._on_event(event)
        except Exception:
            # The traceback once: a broken ignore rule fails on every event after.
            logger.log(
                logging.DEBUG if self._failed_before else logging.ERROR,
                "handling a file event failed: %s",
                event,
                exc_info=True,
            )
            self._failed_before = True
            self._on_lost("handling a file event failed")


if sys.platform == "linux":
    from watchdog.observers import inotify, inotify_c

    class _ReportingInotifyFD(inotify_c.InotifyFD):
        """watchdog's inotify reader, telling us whenever events may have been lost."""

        def __init__(self, on_lost: LostHandler) -> None:
            super().__init__()
            self._on_lost = on_lost

        def add_callback(
            self,
            path: bytes,
            mask: inotify_c.Mask,
            callback: inotify_c.WatchCallback,
            id_: inotify_c.CallbackId,
        ) -> inotify_c.WatchDescriptor:
            try:
                return super().add_callback(path, mask, callback, id_)
            except OSError as exc:
                # watchdog skips a subdirectory it cannot watch without a word; a full
                # watch table means edits below it would go unseen.
                if exc.errno in (errno.ENOSPC, errno.ENOMEM):
                    logger.debug("cannot watch %s: %s", os.fsdecode(path), exc.strerror)
                    # One reason for every such directory, so it is reported once.
                    self._on_lost(
                        "the inotify watch limit is reached, some directories go unwatched"
                        " (raise the sysctl fs.inotify.max_user_watches)"
                    )
                raise

        def handle_event(self, event: inotify_c.InotifyEvent) -> None:
            try:
                super().handle_event(event)
            except Exception:
                logger.exception("watchdog failed to handle an inotify event")
                self._on_lost("watchdog failed to handle an inotify event")
                return
            if event.is_queue_overflow:
                # After watchdog has rebuilt its watches, so the rescan sees a watched tree.
                self._on_lost("the kernel's inotify event queue overflowed")

    class _InotifyObserver(api.BaseObserver):
        def __init__(self, on_lost: LostHandler) -> None:
            self._reader = _ReportingInotifyFD(on_lost)
            self._reader.start()
            super().__init__(inotify.InotifyEmitter, inotify_fd=self._reader)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._reader.stop()
            self._reader.join()

    def _new_observer(on_lost: LostHandler) -> api.BaseObserver:
        return _InotifyObserver(on_lost)

else:

    def _new_observer(on_lost: LostHandler) -> api.BaseObserver:
        del on_lost  # only the inotify reader can tell
        return observers.Observer()


def _start_observer(
    watches: Iterable[tuple[pathlib.Path, bool]],
    handler: events.FileSystemEventHandler,
    on_lost: LostHandler,
) -> api.BaseObserver:
    """An observer running on ``watches`` (path, recursive); its watches are in place
    when this returns, so no change made afterwards can be missed."""
    observer = _new_observer(on_lost)
    paths = []
    for path, recursive in watches:
        observer.schedule(handler, str(path), recursive=recursive, event_filter=_EVENT_FILTER)
        paths.append(str(path))
    try:
        observer.start()
    except OSError as exc:
        observer.stop()
        hint = "check that the repository directory exists and is readable"
        if exc.errno in (errno.ENOSPC, errno.EMFILE):
            hint = "raise the sysctls fs.inotify.max_user_watches / max_user_instances"
        raise errors.RepositoryError(
            f"cannot watch {', '.join(paths)}: {exc.strerror}", hint=hint
        ) from exc
    return observer


def _stop_observer(observer: api.BaseObserver | None) -> None:
    if observer is not None:
        observer.stop()
        observer.join()


class WorktreeWatcher:
    """Pushes the repository-relative paths of saved changes in the work tree."""

    def __init__(
        self,
        repo: pathlib.Path,
        debouncer: debouncing.Debouncer,
        ignore: Callable[[str], bool] = lambda _relative: False,
    ) -> None:
        self.repo = repo
        self._root = os.fspath(repo)
        self._debouncer = debouncer
        self._ignore = ignore
        self._observer: api.BaseObserver | None = None
        self._reported: set[str] = set()

    def start(self) -> None:
        """Start watching; raises :class:`RepositoryError` if the tree cannot be watched."""
        if not self.repo.is_dir():
            raise errors.RepositoryError(f"cannot watch {self.repo}: not a directory")
        self._observer = _start_observer(
            [(self.repo, True)], _Forwarder(self._on_event, self.lost), self.lost
        )

    def stop(self) -> None:
        """Stop watching and wait for watchdog's threads to end."""
        observer, self._observer = self._observer, None
        _stop_observer(observer)

    def lost(self, reason: str) -> None:
        """Events may have been lost: ask the loop for a full rescan."""
        if reason not in self._reported:
            # One warning per kind of loss: a full watch table fails on every new directory.
            self._reported.add(reason)
            logger.warning("%s: %s; the next cycle re-reads the whole tree", self.repo, reason)
        self._debouncer.push(rescan=True)

    def _relative(self, path: bytes | str) -> str | None:
        full = os.fsdecode(path)
        if full == self._root:
            return None
        prefix = self._root.rstrip(os.sep) + os.sep
        if not full.startswith(prefix):
            return ""
        return full[len(prefix) :].replace(os.sep, "/")

    def _on_event(self, event: events.FileSystemEvent) -> None:
        if event.is_directory and event.event_type == events.EVENT_TYPE_MODIFIED:
            return  # a file event inside says more
        ends = [event.src_path]
        if event.event_type == events.EVENT_TYPE_MOVED and event.dest_path:
            ends.append(event.dest_path)
        paths: list[str] = []
        for end in ends:
            relative = self._relative(end)
            if relative is None:
                self.lost("the repository directory itself was moved or deleted")
                return
            if relative and not builtin_ignored(relative) and not self._ignore(relative):
                paths.append(relative)
        if paths:
            self._debouncer.push(paths)


class CommitWatcher:
    """Pushes the tracked branch's commit id whenever it changes.

    ``last_seen`` is the commit already handled (e.g. the one deployed before a restart);
    by default the branch's commit when :meth:`start` is called. A branch that does not
    exist (yet, or any more) pushes nothing until it points at a commit again.
    """

    def __init__(
        self,
        repo: pathlib.Path,
        branch: str,
        debouncer: debouncing.Debouncer,
        poll_seconds: float,
        *,
        last_seen: str | None = None,
        files: Sequence[pathlib.Path] = (),
    ) -> None:
        self.repo = repo
        #: files outside git that are inputs too (the local secrets): a change is pushed
        self.files = tuple(path.absolute() for path in files)
        self.branch = branch
        self.poll_seconds = poll_seconds
        self._debouncer = debouncer
        self._last_seen = last_seen
        self._observer: api.BaseObserver | None = None
        self._checker: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._git_dirs: tuple[pathlib.Path, ...] = ()

    @property
    def last_seen(self) -> str | None:
        return self._last_seen

    def start(self) -> None:
        """Start watching; raises :class:`RepositoryError` if ``repo`` is not a repository."""
        handle = git_reading.open_repository(self.repo)
        try:
            git_dir, common_dir = git_reading.git_directories(handle)
            self._git_dirs = tuple(dict.fromkeys([git_dir, common_dir]))
            if self._last_seen is None:
                self._last_seen = git_reading.branch_commit(handle, self.branch)
            watches = [(directory, False) for directory in self._git_dirs]
            if (common_dir / "refs" / "heads").is_dir():
                watches.append((common_dir / "refs" / "heads", True))
            watches += [(path.parent, False) for path in self.files if path.parent.is_dir()]
            self._observer = _start_observer(
                watches, _Forwarder(self._on_event, self.lost), self.lost
            )
        except BaseException:
            handle.close()
            raise
        self._stopping.clear()
        self._wake.set()  # a commit made while starting is caught by a first check
        self._checker = threading.Thread(
            target=self._run,
            args=(functools.partial(git_reading.branch_commit, handle, self.branch), handle.close),
            name=f"lumina-commit-watch-{self.branch}",
            daemon=True,
        )
        self._checker.start()

    def stop(self) -> None:
        """Stop watching and polling, and wait for the threads to end."""
        observer, self._observer = self._observer, None
        _stop_observer(observer)
        self._stopping.set()
        self._wake.set()
        checker, self._checker = self._checker, None
        if checker is not None:
            checker.join()

    def lost(self, reason: str) -> None:
        """A ref change may have gone unseen: read the branch now."""
        logger.info("%s: %s; re-reading branch %s", self.repo, reason, self.branch)
        self._wake.set()

    def _names_a_ref(self, path: pathlib.Path) -> bool:
        return any(
            (path.parent == directory and path.name in ("HEAD", "packed-refs"))
            or path.is_relative_to(directory / "refs" / "heads")
            for directory in self._git_dirs
        )

    def _on_event(self, event: events.FileSystemEvent) -> None:
        ends = [event.src_path]
        if event.event_type == events.EVENT_TYPE_MOVED and event.dest_path:
            ends.append(event.dest_path)  # git renames "<ref>.lock" over the ref
        paths = [pathlib.Path(os.fsdecode(end)) for end in ends]
        if any(self._names_a_ref(path) for path in paths):
            self._wake.set()
        touched = [path for path in paths if path in self.files]
        if touched:
            self._debouncer.push(os.path.relpath(path, self.repo.absolute()) for path in touched)

    def _run(self, read_branch: Callable[[], str | None], close: Callable[[], None]) -> None:
        # Every gitpython call happens on this one thread: a Repo is not thread-safe.
        try:
            while not self._stopping.is_set():
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
                if self._stopping.is_set():
                    break
                self._check(read_branch)
        finally:
            close()

    def _check(self, read_branch: Callable[[], str | None]) -> None:
        try:
            current = read_branch()
        except Exception:
            # A half-written packed-refs, a repository being re-cloned: the next hint or
            # poll reads again; this thread must outlive the hiccup.
            logger.exception("%s: cannot read branch %s", self.repo, self.branch)
            return
        if current == self._last_seen:
            return
        if current is None:
            logger.warning("%s: tracked branch %s does not exist", self.repo, self.branch)
        else:
            logger.info("%s: branch %s is now at %s", self.repo, self.branch, current[:12])
            self._debouncer.push(commit=current)
        self._last_seen = current


class Condition(enum.StrEnum):
    """The state of the repository, as far as deploying its work tree goes."""

    READY = "ready"
    REBASING = "rebasing"
    MERGING = "merging"
    CONFLICTED = "conflicted"
    INDEX_LOCKED = "index-locked"
    DETACHED_HEAD = "detached-head"
    OTHER_BRANCH = "other-branch"


#: Git operations that leave the work tree half-written until they end.
HALF_DONE = frozenset(
    {Condition.REBASING, Condition.MERGING, Condition.CONFLICTED, Condition.INDEX_LOCKED}
)


@dataclasses.dataclass(frozen=True)
class RepositoryCondition:
    condition: Condition
    #: Says what is going on and what ends it, for the status output.
    message: str

    def pauses(self, mode: settings.TriggerMode) -> bool:
        """Whether a cycle in ``mode`` must wait (see the table in the module docstring)."""
        return mode is settings.TriggerMode.WORKTREE and self.condition in HALF_DONE


def _listing(paths: list[str], limit: int = 3) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def read_condition(repo: pathlib.Path, branch: str) -> RepositoryCondition:
    """The repository's condition for the tracked ``branch``; the first that applies of
    rebasing, merging, index-locked, conflicted, detached-head, other-branch, ready."""
    with git_reading.open_repository(repo) as handle:
        git_dir, _common = git_reading.git_directories(handle)
        for name in ("rebase-merge", "rebase-apply"):
            if (git_dir / name).is_dir():
                head_name = git_dir / name / "head-name"
                target = (
                    head_name.read_text(encoding="utf-8").strip().removeprefix("refs/heads/")
                    if head_name.is_file()
                    else "a branch"
                )
                return RepositoryCondition(
                    Condition.REBASING,
                    f"a rebase of {target} is in progress ({name}); deploys resume after"
                    " `git rebase --continue` or `git rebase --abort`",
                )
        if (git_dir / "MERGE_HEAD").is_file():
            conflicts = git_reading.unmerged_paths(handle)
            detail = (
                f"with {len(conflicts)} conflicted path(s): {_listing(conflicts)}"
                if conflicts
                else "not yet committed"
            )
            return RepositoryCondition(
                Condition.MERGING,
                f"a merge is in progress, {detail}; deploys resume after the merge is"
                " committed or `git merge --abort`",
            )
        if (git_dir / "index.lock").exists():
            return RepositoryCondition(
                Condition.INDEX_LOCKED,
                f"git is writing the index ({git_dir / 'index.lock'} exists); if no git"
                " command is running, a crashed one left it behind: delete the file",
            )
        conflicts = git_reading.unmerged_paths(handle)
        if conflicts:
            return RepositoryCondition(
                Condition.CONFLICTED,
                f"{len(conflicts)} path(s) have unresolved conflicts: {_listing(conflicts)};"
                " resolve and `git add` them, or abort the operation",
            )
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
    if not head.startswith("ref:"):
        return RepositoryCondition(
            Condition.DETACHED_HEAD,
            f"HEAD is detached at {head[:12]}; `git switch {branch}` to deploy the work tree",
        )
    current = head.removeprefix("ref:").strip().removeprefix("refs/heads/")
    if current != branch:
        return RepositoryCondition(
            Condition.OTHER_BRANCH,
            f"the work tree is on branch {current}, not the tracked {branch};"
            f" `git switch {branch}` (or set LUMINA_BRANCH) to deploy it",
        )
    return RepositoryCondition(Condition.READY, f"on branch {branch}, no git operation in progress")
