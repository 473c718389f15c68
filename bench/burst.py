"""#4 Burst: a ``git checkout`` of 5,000 changed files must become exactly one batch.

What it runs: the daemon's real trigger chain — ``watching.WorktreeWatcher`` (watchdog)
pushing into ``debouncing.Debouncer`` with the default settings' quiet window and max
delay — on a temp repository with two branches that differ in 5,000 files, then
switches branches with real ``git checkout``. Counted: batches per checkout (each batch
is one plan in the daemon), and how long after the last file event the batch was handed
out ("settle"), plus checkout-start to batch.
"""

from __future__ import annotations

import asyncio
import pathlib

from bench import measuring
from reconciler import settings
from reconciler.inputs import debouncing

NAME = "burst"
TITLE = "Burst (git checkout of 5,000 files)"
FILES = 5_000


def _make_repository(root: pathlib.Path) -> None:
    measuring.init_repository(root)
    (root / "README.md").write_text("burst bench\n", encoding="utf-8")
    files = measuring.write_files(root / "services" / "app" / "src", FILES)
    measuring.git(root, "add", "-A")
    measuring.git(root, "commit", "-q", "-m", "base")
    measuring.git(root, "checkout", "-q", "-b", "wide")
    for path in files:
        path.write_text(path.read_text(encoding="utf-8") + "CHANGED = True\n", encoding="utf-8")
    measuring.git(root, "commit", "-q", "-am", "5,000 files changed")
    measuring.git(root, "checkout", "-q", "main")


async def _trial(
    root: pathlib.Path, debouncer: debouncing.Debouncer, branch: str, drain: float
) -> dict[str, float | int]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.to_thread(measuring.git, root, "checkout", "-q", branch)
    checkout_done = loop.time()
    batches: list[tuple[debouncing.Batch, float]] = []
    while True:
        try:
            batch = await asyncio.wait_for(debouncer.next_batch(), drain)
        except TimeoutError:
            break
        batches.append((batch, loop.time()))
    if not batches:
        raise RuntimeError(f"no batch at all after `git checkout {branch}` of {FILES} files")
    last_batch, handed_at = batches[-1]
    return {
        "batches": len(batches),
        "events": sum(batch.count for batch, _ in batches),
        "paths": sum(len(batch.paths) for batch, _ in batches),
        "checkout_seconds": checkout_done - started,
        "settle_seconds": handed_at - last_batch.last_at,
        "checkout_to_batch_seconds": handed_at - started,
        "events_after_checkout_seconds": max(0.0, last_batch.last_at - checkout_done),
    }


async def _measure(root: pathlib.Path, trials: int) -> list[dict[str, float | int]]:
    from reconciler.inputs import watching  # noqa: PLC0415 — reported as "not run" when missing

    defaults = settings.Settings(repo=root)
    debouncer = debouncing.Debouncer(
        quiet=defaults.debounce_seconds, max_delay=defaults.debounce_max_seconds
    )
    watcher = watching.WorktreeWatcher(
        root, debouncer, ignore=lambda path: path.startswith(".lumina/")
    )
    watcher.start()
    drain = defaults.debounce_max_seconds + 3.0
    try:
        # Whatever the watcher reports while starting is not part of a trial.
        while True:
            try:
                await asyncio.wait_for(debouncer.next_batch(), defaults.debounce_seconds * 3)
            except TimeoutError:
                break
        return [
            await _trial(root, debouncer, "wide" if index % 2 == 0 else "main", drain)
            for index in range(trials)
        ]
    finally:
        watcher.stop()


def run(ctx: measuring.Context) -> measuring.GroupResult:
    try:
        from reconciler.inputs import watching  # noqa: F401, PLC0415
    except ImportError as exc:
        raise measuring.NotRunError(
            f"reconciler.inputs.watching is not importable ({exc})"
        ) from exc
    result = measuring.GroupResult(NAME, TITLE)
    root = ctx.work / "burst-repo"
    ctx.say(f"burst: two branches differing in {FILES:,} files")
    _make_repository(root)
    trials = asyncio.run(_measure(root, ctx.times(3)))
    result.raw["trials"] = trials
    batches = [int(trial["batches"]) for trial in trials]
    settle = [float(trial["settle_seconds"]) for trial in trials]
    to_batch = [float(trial["checkout_to_batch_seconds"]) for trial in trials]
    checkout = [float(trial["checkout_seconds"]) for trial in trials]
    result.rows = [
        measuring.Row(
            "batches (= plans) per checkout",
            f"{', '.join(map(str, batches))} over {len(trials)} checkouts",
            "exactly 1",
            all(count == 1 for count in batches),
        ),
        measuring.Row("settle: last file event -> batch", measuring.spread(settle)),
        measuring.Row(
            "checkout start -> batch (git itself: "
            f"{measuring.seconds(measuring.median(checkout))})",
            measuring.spread(to_batch),
        ),
    ]
    return result
