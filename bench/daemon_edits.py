"""Saved edit -> new pod Ready with the daemon running: the inner loop as a user sees it.

Who calls it: :mod:`bench.inner_loop`, in its clone, while the clone owns the release.
The clone's daemon runs in work-tree mode (``lumina-reconcile run``, its debounce
included); the clock starts when the bench writes the one-line edit and stops when the
bench's own watch of the service's pods (:mod:`bench.serving_watch`) sees a pod of a new
tag Ready. The same watch gives the seconds in which no pod of the service served. The
daemon's phases come from its status document (``/status``), whose last cycle is the
one the edit set off; "detect" is the time from the edit to that cycle's start.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
import urllib.request
from typing import Any

from bench import measuring, serving_watch, stack
from reconciler import settings
from reconciler.cluster import kube

#: the cycle's phases, in the order they run
PHASES = ("detect", "plan", "build", "load", "deploy", "ready")


def _status(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as answer:
            document: dict[str, Any] = json.load(answer)
            return document
    except (OSError, ValueError):
        return None


def _last_cycle(port: int) -> dict[str, Any]:
    document = _status(port) or {}
    return dict(document.get("last_cycle") or {})


def _wait_idle_after(port: int, since: float, timeout: float) -> dict[str, Any]:
    """The first cycle the daemon finished after wall time ``since`` (empty on timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cycle = _last_cycle(port)
        if float(cycle.get("finished_at") or 0) > since:
            return cycle
        time.sleep(0.2)
    return {}


def _start(ctx: measuring.Context, clone: pathlib.Path, port: int) -> None:
    started = time.time()
    pid = stack.start_daemon(clone)
    ctx.say(f"inner loop: the clone's daemon started (PID {pid}); waiting for its first cycle")
    if not _wait_idle_after(port, started, 180):
        raise RuntimeError(f"the clone's daemon did not finish a cycle; see {clone}/.lumina")


def _stop(clone: pathlib.Path) -> None:
    measuring.run([stack.executable(), "stop", "--repo", str(clone)], timeout=300, check=False)


def _one_edit(
    ctx: measuring.Context,
    clone: pathlib.Path,
    connection: kube.Kube,
    namespace: str,
    service: str,
    *,
    port: int,
    label: str,
) -> dict[str, Any]:
    with serving_watch.ServingWatch(connection, namespace, service) as watch:
        known = watch.known()
        saved_at = time.time()
        edited = time.monotonic()
        stack.edit(clone, service, label)
        seen = watch.wait_new(known, timeout=300)
        cycle = _wait_idle_after(port, saved_at, 300)
        ready_at = seen[1] if seen else time.monotonic()
        unserved = watch.unserved_between(edited, ready_at)
    phases = dict(cycle.get("phases") or {})
    if cycle:
        cycle_seconds = sum(float(v) for v in phases.values())
        phases["detect"] = max(0.0, float(cycle["finished_at"]) - cycle_seconds - saved_at)
    if seen is None:
        ctx.say(f"[yellow]{service}: no new pod Ready within 300 s: {cycle.get('message')}[/]")
    return {
        "seconds": (seen[1] - edited) if seen else None,
        "tag": seen[0] if seen else "",
        "unserved": unserved,
        "outcome": cycle.get("outcome", ""),
        "built": cycle.get("built", []),
        "phases": phases,
    }


def measure(
    ctx: measuring.Context,
    clone: pathlib.Path,
    connection: kube.Kube,
    namespace: str,
    services: tuple[str, ...],
) -> dict[str, list[dict[str, Any]]]:
    """Per service (and ``backend-untried``: trial starts off), one record per edit."""
    port = settings.load_settings(clone).status_port
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in (*services, "backend-untried")}
    _start(ctx, clone, port)
    try:
        for rep in range(ctx.times(3)):
            for service in services:
                ctx.say(f"inner loop: {service} edit {rep + 1} with the daemon running")
                runs[service].append(
                    _one_edit(
                        ctx,
                        clone,
                        connection,
                        namespace,
                        service,
                        port=port,
                        label=f"{rep}-daemon",
                    )
                )
    finally:
        _stop(clone)
    os.environ["LUMINA_TRIAL_STARTS"] = "false"
    try:
        _start(ctx, clone, port)
        for rep in range(ctx.times(3)):
            ctx.say(f"inner loop: backend edit {rep + 1} with the daemon running, trial off")
            runs["backend-untried"].append(
                _one_edit(
                    ctx,
                    clone,
                    connection,
                    namespace,
                    "backend",
                    port=port,
                    label=f"{rep}-daemon-off",
                )
            )
    finally:
        os.environ.pop("LUMINA_TRIAL_STARTS", None)
        _stop(clone)
    return runs


def phase_text(runs: list[dict[str, Any]], names: tuple[str, ...] = PHASES) -> str:
    """Median of each phase over the runs that recorded phases (0 for one not run)."""
    recorded = [run["phases"] for run in runs if run["phases"]]
    if not recorded:
        return ""
    return ", ".join(
        f"{name} {measuring.seconds(measuring.median([float(p.get(name, 0.0)) for p in recorded]))}"
        for name in names
    )
