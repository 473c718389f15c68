"""#9 The app under load: a CRUD mix per user at 5, 50 and 200 concurrent users.

What it runs: asyncio + httpx against 127.0.0.1 only — the backend directly through a
``kubectl port-forward`` to its Service, and the same API through the frontend's
NodePort (30080), whose route handlers call the backend by cluster DNS. Every simulated
user has an account of its own, registered and signed in beforehand (fresh random
addresses and passwords each run; nothing is written down). Each user loops: create,
list, get, patch, delete one todo, for ``--load-seconds`` per level (default 20) and at
most 100 loops. Figures: p50/p95/p99 of single requests, requests per second, errors
(any transport error or unexpected status).

That closed loop with no think time shows saturation; then the open loop of
:mod:`bench.open_loop` (50 and 200 users x 1 request/s, Poisson arrivals) gives the
latency a user sees: to the backend's Service from a pod inside the cluster (no
port-forward in the path) and through the frontend's NodePort.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pathlib
import secrets
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from bench import measuring, open_loop, stack
from reconciler import errors, settings
from reconciler.cluster import kube, providers

#: deploys to or depends on the shared cluster (see run.py --cluster-lock)
USES_CLUSTER = True
NAME = "load"
TITLE = "App under load (CRUD mix, 127.0.0.1)"
LEVELS = (5, 50, 200)
MAX_LOOPS = 100
TARGET_P95 = 0.020


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _port_forward(config: settings.Settings, info: Any) -> Iterator[str]:
    # The local cluster's own kubectl matches its API server; else any on PATH.
    cache = pathlib.Path(os.environ.get("LUMINA_CACHE", pathlib.Path.home() / ".cache" / "lumina"))
    built = sorted(cache.glob("k8s/v*/bin/kubectl"))
    kubectl = str(built[-1]) if built else shutil.which("kubectl")
    if kubectl is None:
        raise measuring.NotRunError("kubectl is not installed (needed for the port-forward)")
    port = _free_port()
    forward = subprocess.Popen(
        [
            kubectl,
            "--kubeconfig",
            str(info.kubeconfig),
            "--context",
            info.context,
            "-n",
            config.namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            "service/backend",
            f"{port}:8000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if forward.poll() is not None or time.monotonic() > deadline:
                output = forward.stdout.read() if forward.stdout else ""
                raise RuntimeError(f"kubectl port-forward to the backend failed: {output[-400:]}")
            time.sleep(0.3)
        yield url
    finally:
        forward.terminate()
        forward.wait(10)


async def _accounts(backend: str, count: int) -> tuple[list[tuple[str, str]], list[str]]:
    """Fresh accounts: (email, password) pairs and their access tokens."""
    run_id = secrets.token_hex(4)
    limit = asyncio.Semaphore(8)

    async def one(client: httpx.AsyncClient, index: int) -> tuple[str, str, str]:
        email = f"bench-{run_id}-{index}@example.com"
        password = secrets.token_urlsafe(16)
        async with limit:
            made = await client.post(
                "/api/auth/register", json={"email": email, "password": password}
            )
            if made.status_code != 201:
                raise RuntimeError(f"register {email}: {made.status_code} {made.text[:200]}")
            signed = await client.post(
                "/api/auth/login", json={"email": email, "password": password}
            )
            if signed.status_code != 200:
                raise RuntimeError(f"login {email}: {signed.status_code} {signed.text[:200]}")
        return email, password, str(signed.json()["access_token"])

    async with httpx.AsyncClient(base_url=backend, timeout=60) as client:
        made = await asyncio.gather(*(one(client, index) for index in range(count)))
    return [(email, password) for email, password, _ in made], [token for *_, token in made]


class _Recorder:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.transport_errors = 0

    async def call(
        self, client: httpx.AsyncClient, method: str, url: str, expect: int, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.transport_errors += 1
            self.errors.append(f"{method}: {type(exc).__name__}")
            # A refused connection fails in microseconds: without a pause one user would
            # pile up thousands of errors a second and starve the others.
            await asyncio.sleep(0.2)
            return None
        self.latencies.append(time.perf_counter() - started)
        if response.status_code != expect:
            self.errors.append(f"{method}: {response.status_code}")
            return None
        return response


async def _user(client: httpx.AsyncClient, recorder: _Recorder, until: float, index: int) -> None:
    for loop in range(MAX_LOOPS):
        if time.monotonic() >= until:
            return
        created = await recorder.call(
            client, "POST", "/api/todos", 201, json={"title": f"bench todo {index}-{loop}"}
        )
        await recorder.call(client, "GET", "/api/todos", 200)
        if created is None:
            continue
        todo_id = created.json()["id"]
        await recorder.call(client, "GET", f"/api/todos/{todo_id}", 200)
        await recorder.call(client, "PATCH", f"/api/todos/{todo_id}", 200, json={"done": True})
        await recorder.call(client, "DELETE", f"/api/todos/{todo_id}", 204)


async def _level(base_url: str, users: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    recorder = _Recorder()
    # One connection pair per user, as separate browsers would have.
    clients = [
        httpx.AsyncClient(
            base_url=base_url, timeout=30, limits=httpx.Limits(max_connections=2), **user
        )
        for user in users
    ]
    try:
        started = time.monotonic()
        await asyncio.gather(
            *(
                _user(client, recorder, started + seconds, index)
                for index, client in enumerate(clients)
            )
        )
        wall = time.monotonic() - started
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    cuts = (
        statistics.quantiles(recorder.latencies, n=100)
        if len(recorder.latencies) > 1
        else [float("nan")] * 99
    )
    kinds: dict[str, int] = {}
    for error in recorder.errors:
        kinds[error] = kinds.get(error, 0) + 1
    return {
        "users": len(users),
        "requests": len(recorder.latencies) + recorder.transport_errors,
        "wall_seconds": wall,
        # answered requests per second, errors included: the server did the work
        "throughput": len(recorder.latencies) / wall,
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "errors": len(recorder.errors),
        "error_kinds": kinds,
    }


async def _sessions(frontend: str, accounts: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Sign every account in through the frontend: its session cookie per user."""
    limit = asyncio.Semaphore(8)

    async def one(email: str, password: str) -> dict[str, Any]:
        async with limit, httpx.AsyncClient(base_url=frontend, timeout=60) as client:
            signed = await client.post(
                "/api/auth/login", json={"email": email, "password": password}
            )
            if signed.status_code != 200:
                raise RuntimeError(f"frontend login: {signed.status_code} {signed.text[:200]}")
            return {"cookies": dict(client.cookies)}

    return list(await asyncio.gather(*(one(email, password) for email, password in accounts)))


def _pods(connection: kube.Kube, namespace: str) -> dict[str, tuple[str, int]]:
    """Backend and frontend pods (the load's path): uid -> (service, container restarts)."""
    found = {}
    for service in ("backend", "frontend"):
        for pod in connection.list(
            "v1", "Pod", namespace, label_selector=f"app.kubernetes.io/name={service}"
        ):
            statuses = pod.get("status", {}).get("containerStatuses") or []
            restarts = sum(int(status.get("restartCount", 0)) for status in statuses)
            found[str(pod["metadata"]["uid"])] = (service, restarts)
    return found


def _disturbance(
    before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]
) -> tuple[str, bool]:
    """What happened to the pods during a level, and whether the load can be blamed."""
    if set(before) != set(after):
        return "pods were replaced (a rollout from elsewhere) during this level", False
    restarted = sorted({after[uid][0] for uid in after if after[uid][1] > before[uid][1]})
    if restarted:
        return f"{', '.join(restarted)} restarted under this load", True
    return "", False


def _ms(value: float) -> str:
    return f"{value * 1000:.1f}"


def _open_loops(
    ctx: measuring.Context,
    result: measuring.GroupResult,
    *,
    config: settings.Settings,
    provider: providers.ClusterProvider,
    connection: kube.Kube,
    sessions: list[dict[str, Any]],
) -> None:
    """The open-loop rows (see :mod:`bench.open_loop`), judged as the closed loop's are."""
    paths: list[tuple[str, str, Callable[[], list[dict[str, Any]]]]] = [
        (
            "backend",
            "backend Service (in-cluster pod)",
            lambda: open_loop.in_cluster(ctx, connection, config, ctx.times(3)),
        ),
        (
            "frontend",
            "frontend (NodePort)",
            lambda: open_loop.through_frontend(ctx, sessions, ctx.times(3)),
        ),
    ]
    for path, where, measure in paths:
        before = _pods(connection, config.namespace), provider.status()
        try:
            runs = measure()
        except (RuntimeError, OSError, errors.LuminaError) as exc:
            # One path's failure (a refused pod, say) must not hide the other's figures.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            result.rows.append(
                measuring.Row(f"open loop, {where}", f"not run: {type(exc).__name__}: {first}")
            )
            continue
        what, blamed = _disturbance(before[0], _pods(connection, config.namespace))
        restarted = provider.status() != before[1]
        result.raw[f"open loop {path}"] = {"runs": runs, "pods": what}
        for row in open_loop.rows(path, where, runs):
            if restarted or (what and not blamed):
                why = "the cluster restarted" if restarted else what
                text, met = f"{row.figure}; DISTURBED ({why}): not judged", None
            elif blamed:
                text, met = f"{row.figure}; {what}", False
            else:
                text, met = row.figure, row.met
            result.rows.append(measuring.Row(row.measurement, text, row.target, met))


def run(ctx: measuring.Context) -> measuring.GroupResult:
    config = settings.load_settings(ctx.repo)
    provider, info = stack.cluster(config)
    try:
        if httpx.get(f"{stack.FRONTEND_URL}/api/health", timeout=5).status_code != 200:
            raise measuring.NotRunError("the frontend on :30080 is not healthy")
    except httpx.HTTPError as exc:
        raise measuring.NotRunError(f"the frontend on :30080 does not answer ({exc})") from exc
    result = measuring.GroupResult(NAME, TITLE)
    connection = stack.connect(info)
    with _port_forward(config, info) as backend:
        ctx.say(f"load: registering {max(LEVELS)} accounts")
        accounts, tokens = asyncio.run(_accounts(backend, max(LEVELS)))
        ctx.say("load: signing them in through the frontend")
        sessions = asyncio.run(_sessions(stack.FRONTEND_URL, accounts))
        direct = [{"headers": {"Authorization": f"Bearer {token}"}} for token in tokens]
        for target, url, users in (
            ("backend (port-forward)", backend, direct),
            ("frontend (NodePort)", stack.FRONTEND_URL, sessions),
        ):
            for level in LEVELS:
                ctx.say(f"load: {target}, {level} users, {ctx.load_seconds:.0f} s")
                before = _pods(connection, config.namespace), provider.status()
                figures = asyncio.run(_level(url, users[:level], ctx.load_seconds))
                what, blamed = _disturbance(before[0], _pods(connection, config.namespace))
                figures["pods"] = what
                # The cluster's own processes restarted (someone else's `cluster down/up`
                # on this shared machine): then the pods' restarts are not the load's doing.
                figures["cluster_restarted"] = provider.status() != before[1]
                result.raw[f"{target} {level}"] = figures
                text = (
                    f"p50/p95/p99 {_ms(figures['p50'])}/{_ms(figures['p95'])}/"
                    f"{_ms(figures['p99'])} ms, {figures['throughput']:.0f} req/s, "
                    f"{figures['errors']} errors"
                )
                aim, met = "", None
                if target.startswith("backend") and level == 50:
                    aim = "p95 < 20 ms, 0 errors"
                    met = figures["p95"] < TARGET_P95 and figures["errors"] == 0
                elif level == 200:
                    aim, met = "0 errors", figures["errors"] == 0
                if figures["cluster_restarted"] or (what and not blamed):
                    why = "the cluster restarted" if figures["cluster_restarted"] else what
                    text += f"; DISTURBED ({why}): not judged"
                    met = None
                elif blamed:
                    text += f"; {what}"
                    met = False
                result.rows.append(measuring.Row(f"{target}, {level} users", text, aim, met))
    _open_loops(
        ctx, result, config=config, provider=provider, connection=connection, sessions=sessions
    )
    result.notes.append(
        "the port-forward path goes through kubectl's tunnel, which adds its own latency; "
        "the open loop's backend figures come from a pod in the cluster, without it"
    )
    return result
