"""The daemon's listing memo: patched by the watcher's paths, it must equal a full walk.

Real files on disk, real ``.dockerignore`` rules. Each test changes the tree the ways an
editor, ``git checkout`` or ``rm -rf`` do, tells the memo the paths a watcher would report,
and compares the service's build inputs with those of a fresh walk.
"""

from __future__ import annotations

import pathlib
import random
import shutil

from reconciler import services
from reconciler.inputs import contexts, worktree_reading

PLUGIN = services.ServicePlugin(
    name=services.ServiceName("app"),
    context="app",
    dockerfile="app/Dockerfile",
    image="test/app",
    values_key="app",
    liveness=services.Probe("/health", 8000),
    readiness=services.Probe("/health", 8000),
)


def _tree(root: pathlib.Path) -> None:
    app = root / "app"
    (app / "src" / "pkg").mkdir(parents=True)
    (app / "node_modules" / "dep").mkdir(parents=True)
    (app / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n")
    (app / ".dockerignore").write_text("node_modules\n**/*.log\n")
    for index in range(20):
        (app / "src" / f"m{index}.py").write_text(f"x = {index}\n")
    (app / "src" / "pkg" / "inner.py").write_text("y = 1\n")
    (app / "node_modules" / "dep" / "index.js").write_text("ignored\n")


def _fresh(root: pathlib.Path) -> contexts.ServiceInputs:
    return contexts.service_inputs(PLUGIN, worktree_reading.WorktreeSource(root))


def _memoised(
    root: pathlib.Path, memo: worktree_reading.ListingMemo, cache: worktree_reading.HashCache
) -> contexts.ServiceInputs:
    return contexts.service_inputs(PLUGIN, worktree_reading.WorktreeSource(root, cache, memo))


def test_patched_listing_follows_edits_additions_and_deletions(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    memo, cache = worktree_reading.ListingMemo(), worktree_reading.HashCache()
    first = _memoised(tmp_path, memo, cache)
    assert first.files == _fresh(tmp_path).files

    (tmp_path / "app/src/m3.py").write_text("x = 'edited'\n")
    (tmp_path / "app/src/new.py").write_text("z = 2\n")
    (tmp_path / "app/src/m4.py").unlink()
    memo.touched({"app/src/m3.py", "app/src/new.py", "app/src/m4.py"})
    patched = _memoised(tmp_path, memo, cache)

    assert patched.files == _fresh(tmp_path).files
    assert patched.digest == _fresh(tmp_path).digest != first.digest
    assert "app/src/new.py" in patched.files
    assert "app/src/m4.py" not in patched.files
    # The earlier inputs are not changed under the caller's feet.
    assert "app/src/m4.py" in first.files


def test_directories_moved_removed_and_ignored(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    memo, cache = worktree_reading.ListingMemo(), worktree_reading.HashCache()
    _memoised(tmp_path, memo, cache)

    (tmp_path / "app/src/pkg").rename(tmp_path / "app/src/moved")
    (tmp_path / "app/node_modules/dep/more.js").write_text("still ignored\n")
    (tmp_path / "app/src/debug.log").write_text("excluded by **/*.log\n")
    memo.touched(
        {
            "app/src/pkg",
            "app/src/moved",
            "app/node_modules/dep/more.js",
            "app/src/debug.log",
        }
    )
    patched = _memoised(tmp_path, memo, cache)
    assert patched.files == _fresh(tmp_path).files
    assert "app/src/moved/inner.py" in patched.files
    assert not any(path.startswith("app/src/pkg") for path in patched.files)
    assert not any("node_modules" in path or path.endswith(".log") for path in patched.files)

    shutil.rmtree(tmp_path / "app/src/moved")
    memo.touched({"app/src/moved"})
    assert _memoised(tmp_path, memo, cache).files == _fresh(tmp_path).files


def test_an_edited_dockerignore_walks_again(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    memo, cache = worktree_reading.ListingMemo(), worktree_reading.HashCache()
    _memoised(tmp_path, memo, cache)
    (tmp_path / "app/.dockerignore").write_text("**/*.log\n")
    memo.touched({"app/.dockerignore"})
    patched = _memoised(tmp_path, memo, cache)
    assert "app/node_modules/dep/index.js" in patched.files
    assert patched.files == _fresh(tmp_path).files


def test_without_the_watcher_s_word_the_memo_trusts_itself_until_told_to_forget(
    tmp_path: pathlib.Path,
) -> None:
    """The memo is only as good as the events it is fed; ``forget`` (a rescan) resets it."""
    _tree(tmp_path)
    memo, cache = worktree_reading.ListingMemo(), worktree_reading.HashCache()
    before = _memoised(tmp_path, memo, cache)
    (tmp_path / "app/src/unreported.py").write_text("lost event\n")
    assert _memoised(tmp_path, memo, cache).files == before.files
    memo.forget()
    assert "app/src/unreported.py" in _memoised(tmp_path, memo, cache).files


def test_random_changes_patch_to_the_same_inputs_as_a_full_walk(tmp_path: pathlib.Path) -> None:
    _tree(tmp_path)
    memo, cache = worktree_reading.ListingMemo(), worktree_reading.HashCache()
    _memoised(tmp_path, memo, cache)
    rng = random.Random(7)
    app = tmp_path / "app"
    for step in range(60):
        reported: set[str] = set()
        for _ in range(rng.randint(1, 4)):
            files = [p for p in app.rglob("*") if p.is_file() and p.name != "Dockerfile"]
            dirs = [p for p in app.rglob("*") if p.is_dir()]
            action = rng.choice(["edit", "add", "delete", "mkdir", "rmdir", "rename"])
            if action == "edit" and files:
                target = rng.choice(files)
                target.write_text(f"step {step}\n")
            elif action == "add":
                target = rng.choice([app, *dirs]) / f"f{step}_{rng.randint(0, 999)}.py"
                target.write_text("new\n")
            elif action == "delete" and files:
                target = rng.choice(files)
                target.unlink()
            elif action == "mkdir":
                target = rng.choice([app, *dirs]) / f"d{step}"
                target.mkdir(exist_ok=True)
                (target / "a.py").write_text("a\n")
                (target / "b.log").write_text("b\n")
            elif action == "rmdir" and dirs:
                target = rng.choice(dirs)
                shutil.rmtree(target)
            elif action == "rename" and dirs:
                source = rng.choice(dirs)
                target = source.with_name(source.name + "r")
                if target.exists():
                    continue
                source.rename(target)
                reported.add(source.relative_to(tmp_path).as_posix())
            else:
                continue
            reported.add(target.relative_to(tmp_path).as_posix())
        memo.touched(reported)
        patched = _memoised(tmp_path, memo, cache)
        assert patched.files == _fresh(tmp_path).files, f"step {step}: {sorted(reported)}"
