"""Triggers with real watchdog (inotify), real files and real git repositories.

Each test starts a watcher on a repository made by the ``project`` fixture, changes it the
way a user or git would, and checks the batches the reconcile loop would receive: how
many, and what they hold. Windows are generous (a shared CI machine) and no assertion is
about speed.

The inotify overflow test provokes a real kernel overflow without touching any sysctl:
it holds the inotify reader's lock (a private attribute of watchdog's ``InotifyFD``) so
the reader stops draining the kernel queue, makes more changes than
``fs.inotify.max_queued_events`` can hold, and lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from conftest import commit_all, git, write

from reconciler import errors, settings
from reconciler.inputs import debouncing, watching

QUIET = 0.5
#: Long enough that a second batch of the same burst would have shown up.
SETTLE = 1.5
#: Longer than any test: a commit seen must have come from inotify, not from the poll.
NO_POLL = 600.0


async def batches_within(debouncer: debouncing.Debouncer, seconds: float) -> list[debouncing.Batch]:
    """Every batch that arrives within ``seconds``."""
    found: list[debouncing.Batch] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                found.append(await debouncer.next_batch())
    return found


async def one_batch(debouncer: debouncing.Debouncer, *, timeout: float = 30) -> debouncing.Batch:
    """The next batch, then proof that no second one follows it."""
    batch = await asyncio.wait_for(debouncer.next_batch(), timeout)
    extra = await batches_within(debouncer, SETTLE)
    assert extra == [], f"expected one batch, then: {extra}"
    return batch


@contextlib.asynccontextmanager
async def watching_worktree(
    repo: pathlib.Path, ignore: Callable[[str], bool] = lambda _path: False
) -> AsyncIterator[tuple[debouncing.Debouncer, watching.WorktreeWatcher]]:
    debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=60)
    watcher = watching.WorktreeWatcher(repo, debouncer, ignore)
    watcher.start()
    try:
        yield debouncer, watcher
    finally:
        watcher.stop()


@contextlib.asynccontextmanager
async def watching_commits(
    repo: pathlib.Path, poll_seconds: float = NO_POLL, branch: str = "main"
) -> AsyncIterator[debouncing.Debouncer]:
    debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=60)
    watcher = watching.CommitWatcher(repo, branch, debouncer, poll_seconds)
    watcher.start()
    try:
        yield debouncer
    finally:
        watcher.stop()


def in_thread(function: Callable[[], object]) -> Awaitable[object]:
    """Run blocking file or git work off the event loop, as an editor or git would."""
    return asyncio.to_thread(function)


# --- work tree ------------------------------------------------------------------------


def test_a_burst_of_5000_new_files_is_one_batch_with_all_of_them(project: pathlib.Path) -> None:
    async def scenario() -> None:
        async with watching_worktree(project) as (debouncer, _watcher):

            def burst() -> None:
                folder = project / "services/backend/app/generated"
                folder.mkdir()
                for index in range(5000):
                    (folder / f"m{index}.py").write_text(f"VALUE = {index}\n")

            await in_thread(burst)
            batch = await one_batch(debouncer)
        expected = {f"services/backend/app/generated/m{index}.py" for index in range(5000)}
        assert expected <= batch.paths
        assert not batch.rescan
        assert all(not path.startswith((".git", "/")) for path in batch.paths)

    asyncio.run(scenario())


def test_a_checkout_of_a_branch_touching_thousands_of_files_is_one_batch(
    project: pathlib.Path,
) -> None:
    git(project, "switch", "-q", "-c", "big")
    for index in range(3000):
        write(project, f"services/frontend/app/pages/p{index}.tsx", f"export const p = {index}\n")
    write(project, "services/backend/app/main.py", "app = 'backend v2'\n")
    commit_all(project, "thousands of pages")
    git(project, "switch", "-q", "main")

    async def scenario() -> None:
        async with watching_worktree(project) as (debouncer, _watcher):
            await in_thread(lambda: git(project, "switch", "-q", "big"))
            batch = await one_batch(debouncer)
        assert "services/backend/app/main.py" in batch.paths
        pages = {f"services/frontend/app/pages/p{index}.tsx" for index in range(3000)}
        assert pages <= batch.paths
        assert not any(path.startswith(".git") for path in batch.paths)

    asyncio.run(scenario())


def test_an_atomic_rename_save_is_one_batch_naming_the_target(project: pathlib.Path) -> None:
    async def scenario() -> None:
        async with watching_worktree(project) as (debouncer, _watcher):

            def save() -> None:
                target = project / "services/backend/app/main.py"
                temporary = target.with_name(".main.py.swp")
                temporary.write_text("app = 'saved by an editor'\n")
                os.replace(temporary, target)

            await in_thread(save)
            batch = await one_batch(debouncer)
        assert "services/backend/app/main.py" in batch.paths

    asyncio.run(scenario())


def test_changes_inside_ignored_directories_make_no_batch(project: pathlib.Path) -> None:
    def ignore(path: str) -> bool:
        return path.endswith(".log")

    async def scenario() -> None:
        async with watching_worktree(project, ignore) as (debouncer, _watcher):

            def noise() -> None:
                write(project, ".git/info/exclude", "# touched\n")
                git(project, "gc", "-q")  # repacks objects, rewrites refs: all inside .git
                write(project, "services/frontend/node_modules/react/index.js", "x\n")
                write(project, "services/backend/app/__pycache__/main.cpython-313.pyc", "x")
                write(project, ".lumina/state.json", "{}\n")
                write(project, ".nox/tests/bin/python", "x\n")
                write(project, "services/backend/debug.log", "user-ignored\n")
                # Reading is never a change: the reconciler reads every context.
                (project / "services/backend/app/main.py").read_text()

            await in_thread(noise)
            assert await batches_within(debouncer, SETTLE) == []
            # The watcher is alive: a real edit next to the noise comes through, alone.
            await in_thread(lambda: write(project, "services/backend/app/models.py", "M = 1\n"))
            batch = await one_batch(debouncer)
        assert batch.paths == {"services/backend/app/models.py"}

    asyncio.run(scenario())


def test_a_change_while_the_consumer_is_busy_comes_in_the_next_batch(
    project: pathlib.Path,
) -> None:
    async def scenario() -> None:
        async with watching_worktree(project) as (debouncer, _watcher):
            await in_thread(lambda: write(project, "services/chatbot/app/main.py", "v = 2\n"))
            first = await asyncio.wait_for(debouncer.next_batch(), 30)
            # A cycle runs (a build, a Helm upgrade); meanwhile the user saves again.
            await in_thread(lambda: write(project, "services/backend/app/main.py", "v = 3\n"))
            await asyncio.sleep(QUIET * 4)
            second = await one_batch(debouncer)
        assert first.paths == {"services/chatbot/app/main.py"}
        assert second.paths == {"services/backend/app/main.py"}

    asyncio.run(scenario())


def test_a_real_inotify_overflow_asks_for_a_rescan(project: pathlib.Path) -> None:
    queue_limit = int(pathlib.Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    # Each new file queues at least IN_CREATE and IN_CLOSE_WRITE.
    files = queue_limit // 2 + 1000
    assert files < 200_000, f"max_queued_events={queue_limit} is too large to overflow here"

    async def scenario() -> None:
        async with watching_worktree(project) as (debouncer, watcher):
            reader = watcher._observer._reader  # type: ignore[union-attr]

            def flood() -> None:
                folder = project / "services/backend/app"
                with reader._lock:  # the reader cannot drain the kernel queue meanwhile
                    for index in range(files):
                        (folder / f"f{index}.py").write_text("x\n")

            await in_thread(flood)
            batch = await one_batch(debouncer)
        assert batch.rescan

    asyncio.run(scenario())


def test_a_failing_ignore_callback_asks_for_a_rescan_and_watching_goes_on(
    project: pathlib.Path,
) -> None:
    def ignore(path: str) -> bool:
        if path.endswith("poison.py"):
            raise RuntimeError("a plugin's ignore rule crashed")
        return False

    async def scenario() -> None:
        async with watching_worktree(project, ignore) as (debouncer, _watcher):
            await in_thread(lambda: write(project, "services/backend/app/poison.py", "x\n"))
            lost = await one_batch(debouncer)
            await in_thread(lambda: write(project, "services/backend/app/main.py", "v = 4\n"))
            after = await one_batch(debouncer)
        assert lost.rescan
        assert after.paths == {"services/backend/app/main.py"}
        assert not after.rescan

    asyncio.run(scenario())


def test_watching_a_missing_directory_names_it(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=1)
        watcher = watching.WorktreeWatcher(tmp_path / "nowhere", debouncer)
        with pytest.raises(errors.RepositoryError, match="nowhere"):
            watcher.start()

    asyncio.run(scenario())


# --- commits --------------------------------------------------------------------------


def test_a_commit_on_the_tracked_branch_is_one_batch_with_its_id(project: pathlib.Path) -> None:
    async def scenario() -> None:
        async with watching_commits(project) as debouncer:

            def commit() -> str:
                write(project, "services/backend/app/main.py", "app = 'v2'\n")
                return commit_all(project, "v2")

            new = await in_thread(commit)
            batch = await one_batch(debouncer)
        assert batch.commit == new
        assert batch.paths == frozenset()

    asyncio.run(scenario())


def test_a_commit_on_another_branch_makes_no_batch(project: pathlib.Path) -> None:
    async def scenario() -> None:
        async with watching_commits(project) as debouncer:

            def elsewhere() -> None:
                git(project, "switch", "-q", "-c", "feature")
                write(project, "services/backend/app/main.py", "app = 'feature'\n")
                commit_all(project, "feature work")
                git(project, "pack-refs", "--all")  # rewrites packed-refs, main unchanged

            await in_thread(elsewhere)
            assert await batches_within(debouncer, SETTLE) == []
            merged = await in_thread(
                lambda: (
                    git(project, "switch", "-q", "main"),
                    git(project, "merge", "-q", "--ff-only", "feature"),
                    git(project, "rev-parse", "main").strip(),
                )[-1]
            )
            batch = await one_batch(debouncer)
        assert batch.commit == merged

    asyncio.run(scenario())


def test_a_force_reset_to_an_older_commit_is_a_batch_with_the_older_id(
    project: pathlib.Path,
) -> None:
    older = git(project, "rev-parse", "HEAD").strip()
    write(project, "services/backend/app/main.py", "app = 'newer'\n")
    commit_all(project, "newer")

    async def scenario() -> None:
        async with watching_commits(project) as debouncer:
            await in_thread(lambda: git(project, "reset", "-q", "--hard", older))
            batch = await one_batch(debouncer)
        assert batch.commit == older

    asyncio.run(scenario())


def test_quick_successive_commits_are_one_batch_with_the_newest_id(project: pathlib.Path) -> None:
    async def scenario() -> None:
        async with watching_commits(project) as debouncer:

            def three_commits() -> str:
                for index in range(3):
                    write(project, "README.md", f"# project {index}\n")
                    newest = commit_all(project, f"docs {index}")
                return newest

            newest = await in_thread(three_commits)
            batch = await one_batch(debouncer)
        assert batch.commit == newest

    asyncio.run(scenario())


def test_commit_mode_sees_the_local_secrets_change(project: pathlib.Path) -> None:
    """The secrets file is git-ignored, so no commit announces a rotation: the commit
    watcher watches the file itself."""
    secrets_file = project / "config" / "secrets.env"
    secrets_file.parent.mkdir(exist_ok=True)
    secrets_file.write_text("JWT_SECRET_KEY=before\n")

    async def scenario() -> debouncing.Batch:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=60)
        watcher = watching.CommitWatcher(project, "main", debouncer, NO_POLL, files=[secrets_file])
        watcher.start()
        try:
            await in_thread(lambda: write(project, "config/unrelated.toml", "x = 1\n"))
            assert await batches_within(debouncer, SETTLE) == []
            await in_thread(lambda: secrets_file.write_text("JWT_SECRET_KEY=after\n"))
            return await one_batch(debouncer)
        finally:
            watcher.stop()

    batch = asyncio.run(scenario())
    assert batch.paths == frozenset({"config/secrets.env"}) and batch.commit is None


def test_the_poll_finds_a_ref_change_no_watch_reaches(project: pathlib.Path) -> None:
    # With every ref packed and refs/heads gone, a new loose ref appears in a directory
    # created after the watches were set: only the safety-net poll can see it.
    git(project, "pack-refs", "--all")
    for loose in (project / ".git/refs/heads").iterdir():
        loose.unlink()
    (project / ".git/refs/heads").rmdir()

    async def scenario() -> None:
        async with watching_commits(project, poll_seconds=0.5) as debouncer:
            new = await in_thread(lambda: commit_all(project, "after packing"))
            batch = await one_batch(debouncer)
        assert batch.commit == new

    asyncio.run(scenario())


def test_a_linked_worktree_sees_commits_of_the_shared_refs(project: pathlib.Path) -> None:
    linked = project.parent / "linked"
    git(project, "worktree", "add", "-q", "-b", "side", str(linked))

    async def scenario() -> None:
        async with watching_commits(linked) as debouncer:

            def commit_in_main_checkout() -> str:
                write(project, "services/chatbot/app/main.py", "app = 'v2'\n")
                return commit_all(project, "chatbot v2")

            new = await in_thread(commit_in_main_checkout)
            batch = await one_batch(debouncer)
        assert batch.commit == new

    asyncio.run(scenario())


def test_watching_commits_outside_a_repository_names_the_problem(tmp_path: pathlib.Path) -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=1)
        watcher = watching.CommitWatcher(tmp_path, "main", debouncer, NO_POLL)
        with pytest.raises(errors.RepositoryError, match="not a git repository"):
            watcher.start()

    asyncio.run(scenario())


# --- repository conditions ------------------------------------------------------------


def conflict(project: pathlib.Path) -> None:
    """Branches ``left`` (checked out) and ``right`` that both change one line of main.py."""
    git(project, "switch", "-q", "-c", "right")
    write(project, "services/backend/app/main.py", "app = 'right'\n")
    commit_all(project, "right")
    git(project, "switch", "-q", "-c", "left", "main")
    write(project, "services/backend/app/main.py", "app = 'left'\n")
    commit_all(project, "left")


def condition(project: pathlib.Path, branch: str = "main") -> watching.RepositoryCondition:
    return watching.read_condition(project, branch)


def test_a_clean_repository_on_the_tracked_branch_is_ready(project: pathlib.Path) -> None:
    state = condition(project)
    assert state.condition is watching.Condition.READY
    assert not state.pauses(settings.TriggerMode.WORKTREE)


def test_a_detached_head_is_named_and_the_inner_loop_follows_it(project: pathlib.Path) -> None:
    git(project, "switch", "-q", "--detach", "HEAD")
    state = condition(project)
    assert state.condition is watching.Condition.DETACHED_HEAD
    assert "detached" in state.message
    assert not state.pauses(settings.TriggerMode.WORKTREE)
    assert not state.pauses(settings.TriggerMode.COMMIT)


def test_another_branch_checked_out_is_named(project: pathlib.Path) -> None:
    git(project, "switch", "-q", "-c", "experiment")
    state = condition(project)
    assert state.condition is watching.Condition.OTHER_BRANCH
    assert "experiment" in state.message
    assert "main" in state.message


def test_a_rebase_stopped_on_a_conflict_is_rebasing(project: pathlib.Path) -> None:
    conflict(project)
    with pytest.raises(Exception):  # noqa: B017 - git exits non-zero on the conflict
        git(project, "rebase", "right")
    state = condition(project)
    assert state.condition is watching.Condition.REBASING
    assert "left" in state.message
    git(project, "rebase", "--abort")
    assert condition(project, "left").condition is watching.Condition.READY


def test_a_merge_with_conflicts_names_the_conflicted_path(project: pathlib.Path) -> None:
    conflict(project)
    with pytest.raises(Exception):  # noqa: B017 - git exits non-zero on the conflict
        git(project, "merge", "right")
    state = condition(project, "left")
    assert state.condition is watching.Condition.MERGING
    assert "services/backend/app/main.py" in state.message
    assert state.pauses(settings.TriggerMode.WORKTREE)


def test_conflicts_without_a_merge_are_conflicted(project: pathlib.Path) -> None:
    conflict(project)
    with pytest.raises(Exception):  # noqa: B017 - git exits non-zero on the conflict
        git(project, "cherry-pick", "right")
    state = condition(project, "left")
    assert state.condition is watching.Condition.CONFLICTED
    assert "services/backend/app/main.py" in state.message


def test_an_index_lock_left_behind_says_how_to_clear_it(project: pathlib.Path) -> None:
    (project / ".git/index.lock").write_bytes(b"")
    state = condition(project)
    assert state.condition is watching.Condition.INDEX_LOCKED
    assert "index.lock" in state.message
    assert state.pauses(settings.TriggerMode.WORKTREE)
    assert not state.pauses(settings.TriggerMode.COMMIT)
