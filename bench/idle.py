"""#6 Idle cost: CPU and memory of the watching daemon while nothing changes.

What it measures: a child process running the daemon's trigger side exactly as
``lumina-reconcile run`` wires it — ``watching.WorktreeWatcher`` into a
``debouncing.Debouncer`` with the default settings, the loopback status server, and on
every batch a real plan (``snapshots.take``) — with every daemon module imported
(kubernetes, pyhelm3, docker SDK), but no cluster adapter connected, so it runs without
a cluster. It watches a clone of this repository (a clone, so other people's edits in
the work tree are not counted as idle) plus 50,000 extra files inside it. After start-up
settles, psutil samples it for ``--idle-seconds`` (default 60): CPU % = process CPU
time / wall time, RSS. When the real daemon of this repository is running, it is
sampled over the same window too (without the extra files).

``python -m bench.idle REPO`` is the child's entry point.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import select
import subprocess
import sys
import time
from typing import Any

from bench import measuring

NAME = "idle"
TITLE = "Idle cost (watching, 60 s)"
EXTRA_FILES = 50_000
TARGET_CPU = 1.0
TARGET_RSS_MB = 150.0


async def _child(repo: pathlib.Path) -> None:
    # The child alone needs the daemon's modules; `running` and `wiring` are imported for
    # their weight (kubernetes, pyhelm3, docker), since the real daemon loads them too.
    from reconciler import discovery, settings  # noqa: PLC0415
    from reconciler.cycle import metrics  # noqa: PLC0415
    from reconciler.daemon import serving  # noqa: PLC0415
    from reconciler.inputs import debouncing, snapshots, watching, worktree_reading  # noqa: PLC0415

    config = settings.load_settings(repo)
    plugins = discovery.discover_services(repo).plugins
    cache = worktree_reading.HashCache(config.repo_path(config.state_dir) / "cache" / "h.json")
    registry = metrics.Metrics()
    server = serving.StatusServer(0, lambda: {"idle": True}, registry)
    server.start()
    debouncer = debouncing.Debouncer(
        quiet=config.debounce_seconds, max_delay=config.debounce_max_seconds
    )
    state_dir = config.state_dir.strip("/")
    watcher = watching.WorktreeWatcher(
        repo, debouncer, ignore=lambda path: path.startswith(state_dir + "/")
    )
    watcher.start()
    debouncer.push(rescan=True)
    try:
        while True:
            batch = await debouncer.next_batch()
            source = snapshots.source_for(config, cache=cache)
            snapshots.take(config, plugins, source)
            cache.save()
            print(f"batch {batch.count}", flush=True)
    finally:
        watcher.stop()
        server.stop()


def _sample(process: Any, seconds: float) -> dict[str, float]:
    started_cpu = sum(process.cpu_times()[:2])
    started = time.monotonic()
    peak = 0
    while time.monotonic() - started < seconds:
        peak = max(peak, process.memory_info().rss)
        time.sleep(1.0)
    wall = time.monotonic() - started
    used = sum(process.cpu_times()[:2]) - started_cpu
    rss = process.memory_info().rss
    return {
        "wall_seconds": wall,
        "cpu_seconds": used,
        "cpu_percent": 100.0 * used / wall,
        "rss_mb": rss / 2**20,
        "peak_rss_mb": max(peak, rss) / 2**20,
    }


def _running_daemon(repo: pathlib.Path) -> int | None:
    from reconciler import settings  # noqa: PLC0415
    from reconciler.daemon import locking  # noqa: PLC0415

    config = settings.load_settings(repo)
    return locking.holder(config.repo_path(config.state_dir))


def run(ctx: measuring.Context) -> measuring.GroupResult:
    try:
        import psutil  # type: ignore[import-untyped]  # noqa: PLC0415

        from reconciler.inputs import watching  # noqa: F401, PLC0415
    except ImportError as exc:
        raise measuring.NotRunError(f"cannot import {exc.name} ({exc})") from exc
    result = measuring.GroupResult(NAME, TITLE)
    clone = ctx.work / "idle-repo"
    ctx.say(f"idle: cloning the repository and adding {EXTRA_FILES:,} extra files")
    measuring.run(["git", "clone", "-q", "--shared", str(ctx.repo), str(clone)])
    measuring.write_files(clone / "extra", EXTRA_FILES)
    watched = sum(len(files) for _, _, files in os.walk(clone))
    result.raw["files_watched"] = watched
    log_path = ctx.work / "idle-child.log"
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.idle", str(clone)],
            cwd=measuring.ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert child.stdout is not None
        with measuring.stopwatch() as elapsed:
            first = child.stdout.readline()  # the first batch: the start-up rescan, planned
        if not first.startswith("batch"):
            raise RuntimeError(
                f"the watching child exited ({child.poll()}): "
                + log_path.read_text(encoding="utf-8")[-800:]
            )
        result.raw["startup_seconds"] = elapsed()
        time.sleep(3.0)  # let watchdog finish adding its watches
        process = psutil.Process(child.pid)
        daemon_pid = _running_daemon(ctx.repo)
        ctx.say(f"idle: sampling for {ctx.idle_seconds:.0f} s (watcher PID {child.pid})")
        if daemon_pid is not None:
            import threading  # noqa: PLC0415

            daemon_sample: dict[str, float] = {}
            sampler = threading.Thread(
                target=lambda: daemon_sample.update(
                    _sample(psutil.Process(daemon_pid), ctx.idle_seconds)
                )
            )
            sampler.start()
        sample = _sample(process, ctx.idle_seconds)
        if daemon_pid is not None:
            sampler.join()
            result.raw["real_daemon"] = {"pid": daemon_pid, **daemon_sample}
        # An idle watcher that watches nothing would be free: prove it sees the extra files.
        (clone / "extra" / "d0000" / "touched.py").write_text("TOUCHED = 1\n", encoding="utf-8")
        ready, _, _ = select.select([child.stdout], [], [], 15.0)
        result.raw["edit_in_extra_seen"] = bool(ready) and child.stdout.readline().startswith(
            "batch"
        )
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
    result.raw.update(measured="watcher+debouncer+status server child", **sample)
    result.rows = [
        measuring.Row(
            f"watcher child, CPU while idle ({watched:,} files)",
            f"{sample['cpu_percent']:.2f} % of a core over {sample['wall_seconds']:.0f} s",
            f"< {TARGET_CPU:g} %",
            sample["cpu_percent"] < TARGET_CPU,
        ),
        measuring.Row(
            "watcher child, RSS",
            f"{sample['rss_mb']:.0f} MB (peak {sample['peak_rss_mb']:.0f} MB)",
            f"< {TARGET_RSS_MB:g} MB",
            sample["peak_rss_mb"] < TARGET_RSS_MB,
        ),
        measuring.Row(
            "watcher child, start to first plan",
            measuring.seconds(result.raw["startup_seconds"]),
        ),
        measuring.Row(
            "watcher child saw an edit among the extra files",
            "yes" if result.raw["edit_in_extra_seen"] else "no",
            "yes",
            bool(result.raw["edit_in_extra_seen"]),
        ),
    ]
    real = result.raw.get("real_daemon")
    if real:
        result.rows.append(
            measuring.Row(
                f"running daemon (PID {real['pid']}) on this repo, idle",
                f"{real['cpu_percent']:.2f} % CPU, {real['rss_mb']:.0f} MB RSS",
                f"< {TARGET_CPU:g} %, < {TARGET_RSS_MB:g} MB",
                real["cpu_percent"] < TARGET_CPU and real["peak_rss_mb"] < TARGET_RSS_MB,
            )
        )
    else:
        result.notes.append("no daemon was running on this repository: only the child measured")
    return result


if __name__ == "__main__":
    asyncio.run(_child(pathlib.Path(sys.argv[1]).resolve()))
