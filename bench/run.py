"""``python -m bench.run``: run the measurement groups, print one table, save the numbers.

Groups run in a fixed order, offline ones first; each runs in its own temp directory,
and a group that cannot run here ("no cluster", "tool missing") is reported as
``not run: <reason>`` while the others go on. ``--only`` picks groups, ``--repeat``
overrides every group's repetition count.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import pathlib
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from types import ModuleType

import rich.console

from bench import (
    backend_cpu,
    bootstrap,
    builds,
    burst,
    failure,
    idle,
    images,
    inner_loop,
    load,
    measuring,
    noop,
    notify,
    planning,
    report,
)

GROUPS: tuple[ModuleType, ...] = (
    planning,
    burst,
    idle,
    noop,
    notify,
    backend_cpu,
    images,
    builds,
    inner_loop,
    failure,
    load,
    bootstrap,
)


def _arguments(argv: list[str]) -> argparse.Namespace:
    names = [group.NAME for group in GROUPS]
    parser = argparse.ArgumentParser(prog="nox -s bench --", description=__doc__)
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        metavar="NAME",
        help=f"run only this group (repeatable): {', '.join(names)}",
    )
    parser.add_argument(
        "--repeat", type=int, help="repetitions per figure (default: 3 slow, 10 fast)"
    )
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--load-seconds", type=float, default=20.0, help="per load level")
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp directories (path is printed)"
    )
    parser.add_argument(
        "--cluster-lock",
        type=pathlib.Path,
        help="flock this file while a group uses the cluster (a machine shared by several "
        "people running cluster suites, e.g. /tmp/lumina-cluster.lock)",
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat is not None and arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    return arguments


@contextlib.contextmanager
def _cluster_lock(
    path: pathlib.Path | None, group: ModuleType, console: rich.console.Console
) -> Iterator[None]:
    if path is None or not getattr(group, "USES_CLUSTER", False):
        yield
        return
    with open(path, "a", encoding="utf-8") as handle:
        console.print(f"waiting for the cluster lock {path}", highlight=False)
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main(argv: list[str] | None = None) -> int:
    arguments = _arguments(sys.argv[1:] if argv is None else argv)
    # Piped output (nox, CI logs) gets a table wide enough to read, not 80 columns.
    console = rich.console.Console(width=None if sys.stdout.isatty() else 180)
    work = measuring.ROOT / ".lumina" / "bench" / "work"
    work.mkdir(parents=True, exist_ok=True)
    selected = [g for g in GROUPS if not arguments.only or g.NAME in arguments.only]
    load_before = os.getloadavg()
    started = time.time()
    results: list[measuring.GroupResult] = []
    for group in selected:
        scratch = tempfile.mkdtemp(prefix=f"{group.NAME}-", dir=work)
        ctx = measuring.Context(
            repo=measuring.ROOT,
            work=pathlib.Path(scratch),
            console=console,
            repeat=arguments.repeat,
            idle_seconds=arguments.idle_seconds,
            load_seconds=arguments.load_seconds,
        )
        console.rule(f"{group.NAME}: {group.TITLE}")
        began = time.monotonic()
        try:
            with _cluster_lock(arguments.cluster_lock, group, console):
                result = group.run(ctx)
        except measuring.NotRunError as exc:
            result = measuring.GroupResult(group.NAME, group.TITLE, not_run=str(exc))
        except Exception as exc:  # one broken group must not hide the others' figures
            console.print(traceback.format_exc(), highlight=False, markup=False)
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result = measuring.GroupResult(
                group.NAME, group.TITLE, not_run=f"failed: {type(exc).__name__}: {first_line}"
            )
        result.seconds = time.monotonic() - began
        results.append(result)
        # Saved after every group: a later group that hangs or is interrupted costs
        # only its own figures.
        report.write(
            measuring.ROOT / ".lumina" / "bench",
            results,
            {
                "started_at": started,
                "partial": True,
                "argv": sys.argv[1:] if argv is None else argv,
            },
        )
        if result.not_run:
            console.print(f"[yellow]{group.NAME}: not run: {result.not_run}[/]", highlight=False)
        if arguments.keep:
            console.print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    by_name = {result.name: result for result in results if result.not_run is None}
    if inner_loop.NAME in by_name and images.NAME in by_name:
        inner_loop.compare_with_images(by_name[inner_loop.NAME], by_name[images.NAME])
    load_after = os.getloadavg()
    cpus = os.cpu_count() or 0
    title = (
        f"Lumina GitOps benchmarks — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))},"
        f" {cpus} cores, load avg {load_before[0]:.1f} -> {load_after[0]:.1f}"
    )
    meta = {
        "started_at": started,
        "finished_at": time.time(),
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": {
            "cpus": cpus,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
        "commit": measuring.git(measuring.ROOT, "rev-parse", "HEAD"),
    }
    path = report.write(measuring.ROOT / ".lumina" / "bench", results, meta)
    console.rule()
    report.print_table(console, results, title)
    console.print(f"raw numbers: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
