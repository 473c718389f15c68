"""What every measurement group shares: result values, medians, timing, helpers.

Who calls it: every ``bench/<group>.py`` module and :mod:`bench.run`. A group returns a
:class:`GroupResult` of table rows plus raw numbers; a group that cannot run here raises
:class:`NotRunError` with the reason, which the runner reports instead of crashing.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pathlib
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import rich.console

ROOT = pathlib.Path(__file__).resolve().parent.parent


class NotRunError(Exception):
    """This group cannot run on this machine now; the message says why."""


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the final table."""

    measurement: str
    figure: str
    target: str = ""
    #: None when the row has no target (context only)
    met: bool | None = None


@dataclasses.dataclass
class GroupResult:
    name: str
    title: str
    rows: list[Row] = dataclasses.field(default_factory=list)
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    not_run: str | None = None
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


@dataclasses.dataclass
class Context:
    """Run-wide settings handed to each group."""

    repo: pathlib.Path
    work: pathlib.Path
    console: rich.console.Console
    repeat: int | None = None
    idle_seconds: float = 60.0
    load_seconds: float = 20.0

    def times(self, default: int) -> int:
        """Repetitions for a group whose default is ``default`` (``--repeat`` wins)."""
        return self.repeat if self.repeat is not None else default

    def say(self, message: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", highlight=False)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def seconds(value: float) -> str:
    """A duration the way a reader scans it: ms below a second, else seconds."""
    if math.isnan(value):  # nothing measured
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def spread(values: Sequence[float]) -> str:
    """Median with the range, e.g. ``120 ms (110-140 ms, n=10)``."""
    if not values:
        return "n/a"
    low, high = seconds(min(values)), seconds(max(values))
    return f"{seconds(median(values))} ({low}-{high}, n={len(values)})"


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    """``with stopwatch() as elapsed: ...; elapsed()`` — monotonic seconds."""
    started = time.perf_counter()
    finished: list[float] = []
    try:
        yield lambda: (finished[0] if finished else time.perf_counter()) - started
    finally:
        finished.append(time.perf_counter())


def run(
    args: Sequence[str],
    *,
    cwd: pathlib.Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 900,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing output; a failure names the command and its last lines."""
    try:
        done = subprocess.run(
            list(args),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise NotRunError(f"{args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{' '.join(args)} took longer than {timeout:.0f}s") from exc
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"{' '.join(args)} exited {done.returncode}:\n{tail}")
    return done


def git(repo: pathlib.Path, *args: str) -> str:
    return run(["git", "-C", str(repo), *args]).stdout.strip()


def init_repository(path: pathlib.Path) -> None:
    """An empty git repository with an identity, so commits work on any machine."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "bench@lumina.invalid")
    git(path, "config", "user.name", "lumina bench")
    git(path, "config", "commit.gpgsign", "false")


def require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise NotRunError(f"{tool} is not installed")
    return found


def write_files(root: pathlib.Path, count: int, *, per_dir: int = 100) -> list[pathlib.Path]:
    """``count`` small files in directories of ``per_dir``, like a real source tree."""
    written = []
    for index in range(count):
        directory = root / f"d{index // per_dir:04d}"
        if index % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"f{index:05d}.py"
        path.write_text(f"VALUE_{index} = {index}\n", encoding="utf-8")
        written.append(path)
    return written
