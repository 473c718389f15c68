"""#13 The backend's cost per request: server CPU of the CRUD mix, outside the cluster.

What it runs: the backend of this work tree and the backend as issue 13 measured it
(``BASELINE``, extracted with ``git archive``), each in a venv of its own pinned
``requirements.txt`` and served by the command its own Dockerfile runs, pinned to core
0 with ``taskset``; the load generator (:mod:`bench.http_load`, raw asyncio) runs in this
process pinned to core 1. The two versions alternate, each started afresh per run on
its own SQLite file (accounts registered on its first start). Per run: one warm-up
loop per user (not counted), then 50 users x ``LOOPS`` loops of create, list, get,
patch, delete back to back (closed loop), then 50 users x 1 request/s with Poisson
arrivals for ``OPEN_SECONDS`` (open loop, :func:`bench.http_load.open_loop`: latency
from each request's arrival). Server CPU = user + system time of the server's process tree
over the closed-loop window, divided by the requests answered.

Side by side with the image's own server, the current code also runs under the other
server of :data:`SERVERS` (uvicorn or granian, in a venv of the requirements plus that
server's pins), so one run gives the ratio between the two on the same code and core.

The open-loop p95 here has a whole core; the issue's target (< 20 ms) is for the pod's
half core inside the cluster, which this group does not measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import psutil

from bench import http_load, measuring

NAME = "backend_cpu"
TITLE = "Backend cost per request (CRUD mix, pinned, outside the cluster)"
#: the commit before issue 13's work: the old request path, for the ratio
BASELINE = os.environ.get(
    "LUMINA_BENCH_BACKEND_BASELINE", "7269c8a62e5f9f8a168dab0255b372e75f5f10e7"
)
USERS = 50
LOOPS = 8  # closed loop: 50 x 8 x 5 = 2,000 requests per run
OPEN_SECONDS = 10.0  # open loop: 50 users x 1 request/s each, ~500 requests
SERVER_CORE, LOAD_CORE = 0, 1
TARGET_CPU_MS = 1.8
VENVS = measuring.ROOT / ".lumina" / "bench" / "venvs"
#: per server: its command (as the Dockerfile would give it, ``{port}`` to fill in) and
#: the pins that install it beside the backend's own requirements
SERVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "uvicorn": (
        (
            "/opt/venv/bin/uvicorn",
            "app.main:app",
            "--host",
            "0.0.0.0",  # noqa: S104  # replaced by 127.0.0.1, never bound
            "--port",
            "8000",
            "--http",
            "httptools",
            "--timeout-graceful-shutdown",
            "20",
        ),
        ("uvicorn==0.54.0", "httptools==0.9.0"),
    ),
    "granian": (
        (
            "/opt/venv/bin/granian",
            "app.main:app",
            "--interface",
            "asgi",
            "--loop",
            "asyncio",
            "--host",
            "0.0.0.0",  # noqa: S104  # replaced by 127.0.0.1, never bound
            "--port",
            "8000",
            "--access-log",
            "--workers-kill-timeout",
            "20",
        ),
        ("granian==2.8.9",),
    ),
}


@dataclasses.dataclass
class Version:
    """One backend source tree, how it is served, and its accounts."""

    label: str
    tree: pathlib.Path
    command: list[str]
    data: pathlib.Path
    tokens: list[str] = dataclasses.field(default_factory=list)


def _baseline_tree(work: pathlib.Path) -> pathlib.Path:
    archive = work / "baseline.tar"
    measuring.run(
        [
            "git",
            "-C",
            str(measuring.ROOT),
            "archive",
            "-o",
            str(archive),
            BASELINE,
            "services/backend",
        ]
    )
    with tarfile.open(archive) as tar:
        tar.extractall(work / "baseline", filter="data")
    return work / "baseline" / "services" / "backend"


def _venv(tree: pathlib.Path, ctx: measuring.Context, extra: tuple[str, ...] = ()) -> pathlib.Path:
    """A venv with exactly ``tree``'s pinned requirements (plus ``extra`` pins), kept by
    their digest."""
    requirements = (tree / "requirements.txt").read_bytes() + "\n".join(extra).encode()
    path = VENVS / f"backend-{hashlib.sha256(requirements).hexdigest()[:12]}"
    if not (path / "ready").exists():
        ctx.say(f"backend_cpu: installing {tree.name}'s requirements {' '.join(extra)} into {path}")
        shutil.rmtree(path, ignore_errors=True)
        measuring.run([sys.executable, "-m", "venv", str(path)])
        pip = [str(path / "bin" / "python"), "-m", "pip", "install", "-q"]
        measuring.run([*pip, "-r", str(tree / "requirements.txt"), *extra], timeout=900)
        (path / "ready").write_text("ok\n")
    return path


def _image_command(tree: pathlib.Path) -> list[str]:
    """The Dockerfile's CMD."""
    lines = (tree / "Dockerfile").read_text().splitlines()
    return list(json.loads(next(line for line in reversed(lines) if line.startswith("CMD "))[4:]))


def _server_of(command: list[str]) -> str:
    """Which of :data:`SERVERS` a command starts ("" for another one)."""
    program = pathlib.PurePosixPath(command[0]).name
    return program if program in SERVERS else ""


def _served_by(cmd: list[str] | tuple[str, ...], venv: pathlib.Path) -> list[str]:
    """``cmd`` with this venv, on 127.0.0.1 and a ``{port}`` to fill in."""
    swapped = {"0.0.0.0": "127.0.0.1", "8000": "{port}"}  # noqa: S104  # replaced, not bound
    return [
        str(venv / "bin" / part.removeprefix("/opt/venv/bin/"))
        if part.startswith("/opt/venv/bin/")
        else swapped.get(part, part)
        for part in cmd
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _serving(version: Version, port: int, secret: str) -> Iterator[psutil.Process]:
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{version.data / 'lumina.db'}",
        "JWT_SECRET_KEY": secret,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    log = version.data / "server.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                "taskset",
                "-c",
                str(SERVER_CORE),
                *(p.replace("{port}", str(port)) for p in version.command),
            ],
            cwd=version.tree,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(urllib.error.URLError, OSError):
                ready = f"http://127.0.0.1:{port}/api/ready"
                with urllib.request.urlopen(ready, timeout=2) as answer:
                    if answer.status == 200:
                        break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"{version.label} backend did not start: {log.read_text()[-800:]}"
                )
            time.sleep(0.2)
        yield psutil.Process(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tree_cpu(process: psutil.Process) -> float:
    """User + system seconds of the server and its workers."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def _p95(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[94] if len(latencies) > 1 else float("nan")


def _one_run(version: Version, secret: str) -> dict[str, Any]:
    port = _free_port()
    with _serving(version, port, secret) as server:
        if not version.tokens:
            run_id = secrets.token_hex(4)

            async def accounts() -> list[str]:
                return [
                    await http_load.sign_up(
                        port, f"cpu-{run_id}-{index}@example.com", secrets.token_urlsafe(16)
                    )
                    for index in range(USERS)
                ]

            version.tokens = asyncio.run(accounts())
        asyncio.run(http_load.drive(port, version.tokens, 1))  # warm-up, not counted
        cpu_before, client_before = _tree_cpu(server), time.process_time()
        started = time.perf_counter()
        closed = asyncio.run(http_load.drive(port, version.tokens, LOOPS))
        wall = time.perf_counter() - started
        cpu = _tree_cpu(server) - cpu_before
        client_cpu = time.process_time() - client_before
        auths = [f"authorization: Bearer {token}" for token in version.tokens]
        opened = asyncio.run(http_load.open_loop(port, auths, OPEN_SECONDS)).figures()
    answered = len(closed.latencies)
    return {
        "requests": answered,
        "server_cpu_ms_per_request": cpu / answered * 1000 if answered else float("nan"),
        "client_cpu_ms_per_request": client_cpu / answered * 1000 if answered else float("nan"),
        "throughput": answered / wall,
        "closed_p95": _p95(closed.latencies),
        "closed_errors": closed.errors,
        "open_requests": opened["answered"],
        "open_rate": opened["achieved_rate"],
        "open_p50": opened["p50"],
        "open_p95": opened["p95"],
        "open_p99": opened["p99"],
        "open_errors": opened["error_kinds"],
    }


def _versions(ctx: measuring.Context) -> list[Version]:
    """Baseline and current as their Dockerfiles serve them, then the current code under
    every other server of :data:`SERVERS` (labelled ``current on <server>``)."""
    found = []
    tree = measuring.ROOT / "services" / "backend"
    sources: list[tuple[str, pathlib.Path, list[str], tuple[str, ...]]] = [
        ("current", tree, _image_command(tree), ())
    ]
    try:
        old = _baseline_tree(ctx.work)
        sources.insert(0, ("baseline", old, _image_command(old), ()))
    except RuntimeError as exc:
        ctx.say(f"backend_cpu: no baseline ({str(exc).splitlines()[0]}); current only")
    own = _server_of(_image_command(tree))
    for server, (argv, pins) in SERVERS.items():
        if server != own:
            sources.append((f"current on {server}", tree, list(argv), pins))
    for label, source, command, extra in sources:
        data = ctx.work / f"{label.replace(' ', '-')}-data"
        data.mkdir()
        found.append(Version(label, source, _served_by(command, _venv(source, ctx, extra)), data))
    return found


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return measuring.median([run[key] for run in runs])


def _errors(runs: list[dict[str, Any]], key: str) -> int:
    return sum(sum(run[key].values()) for run in runs)


def run(ctx: measuring.Context) -> measuring.GroupResult:
    measuring.require("taskset")
    if len(os.sched_getaffinity(0)) < 2:
        raise measuring.NotRunError("needs two cores: one for the server, one for the load")
    result = measuring.GroupResult(NAME, TITLE)
    versions = _versions(ctx)
    secret = secrets.token_urlsafe(48)
    runs: dict[str, list[dict[str, Any]]] = {version.label: [] for version in versions}
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {LOAD_CORE})
    try:
        for index in range(ctx.times(3)):
            for version in versions:  # alternating, so drift in the machine hits both
                ctx.say(f"backend_cpu: {version.label}, run {index + 1}")
                runs[version.label].append(_one_run(version, secret))
    finally:
        os.sched_setaffinity(0, affinity)
    servers = {version.label: _server_of(version.command) for version in versions}
    own = servers["current"] or "the image's server"
    result.raw = {
        "baseline": BASELINE,
        "users": USERS,
        "loops": LOOPS,
        "server": own,
        "runs": runs,
    }
    current = runs["current"]
    cpu = [run["server_cpu_ms_per_request"] for run in current]
    figure = (
        f"{measuring.median(cpu):.2f} ms ({min(cpu):.2f}-{max(cpu):.2f} ms, n={len(cpu)}) "
        "per request"
    )
    if "baseline" in runs:
        old = _median(runs["baseline"], "server_cpu_ms_per_request")
        new = _median(current, "server_cpu_ms_per_request")
        figure += f"; old code path {old:.2f} ms, {old / new:.2f}x less CPU"
    result.rows.append(
        measuring.Row(
            "server CPU per request, 50 users closed loop",
            figure,
            f"<= {TARGET_CPU_MS} ms",
            _median(current, "server_cpu_ms_per_request") <= TARGET_CPU_MS,
        )
    )
    for label, these in runs.items():
        if not label.startswith("current on "):
            continue
        other = label.removeprefix("current on ")
        mine = _median(current, "server_cpu_ms_per_request")
        theirs = _median(these, "server_cpu_ms_per_request")
        result.rows.append(
            measuring.Row(
                f"same code: {own} (the image's) vs {other}",
                f"{mine:.2f} vs {theirs:.2f} ms per request: {own} uses "
                f"{theirs / mine:.2f}x less CPU; closed loop "
                f"{_median(current, 'throughput'):.0f} vs {_median(these, 'throughput'):.0f} "
                "req/s",
            )
        )
    for label, these in runs.items():
        result.rows.append(
            measuring.Row(
                f"{label} ({servers[label] or 'its server'}): one whole core, 50 users",
                f"closed loop {_median(these, 'throughput'):.0f} req/s, "
                f"p95 {_median(these, 'closed_p95') * 1000:.1f} ms, "
                f"{_errors(these, 'closed_errors')} errors; open loop (1 req/s each, "
                f"{_median(these, 'open_rate'):.0f} req/s) p50/p95/p99 "
                + "/".join(
                    f"{_median(these, k) * 1000:.1f}" for k in ("open_p50", "open_p95", "open_p99")
                )
                + f" ms, {_errors(these, 'open_errors')} errors; load generator "
                f"{_median(these, 'client_cpu_ms_per_request'):.2f} ms CPU per request",
            )
        )
    result.notes.append(
        "the server has a whole core here; the in-cluster targets (half a core) "
        "are the load group's"
    )
    return result
