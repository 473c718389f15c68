"""The status document, the recent cycles and the live rollouts.

Who calls it: ``lumina-reconcile status`` (:mod:`reconciler.cli.main`) prints the status
document; the daemon (:mod:`reconciler.daemon.running`) serves the same document at
``/status`` and keeps the ring of recent cycles behind ``/cycles``; the status page
(``page/``, served by :mod:`reconciler.daemon.serving`) draws both. Everything here is
built from the saved state, the app URL the provider gave, cycle results and Deployment
status — none holds a secret.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from reconciler import settings
from reconciler.cluster import app_urls, kube, rollout
from reconciler.cycle import outcomes, state
from reconciler.daemon import locking
from reconciler.releasing import drifting

#: cycles the daemon keeps in memory for the page (the state file keeps fewer)
CYCLES_KEPT = 200
#: how long one read of the Deployments serves the page's polls
LIVE_SECONDS = 5.0
_FAILED = frozenset(
    {
        outcomes.Outcome.BUILD_FAILED.value,
        outcomes.Outcome.PUSH_FAILED.value,
        outcomes.Outcome.CHART_REJECTED.value,
        outcomes.Outcome.ROLLED_BACK.value,
        outcomes.Outcome.TRIAL_FAILED.value,
        outcomes.Outcome.BLOCKED.value,
        outcomes.Outcome.RETRY.value,
    }
)


class Timeline:
    """The last :data:`CYCLES_KEPT` cycles, oldest first, as their JSON."""

    def __init__(self, earlier: Iterable[Mapping[str, Any]] = ()) -> None:
        self._cycles: collections.deque[dict[str, Any]] = collections.deque(
            (dict(cycle) for cycle in earlier), maxlen=CYCLES_KEPT
        )
        self._lock = threading.Lock()

    def add(self, result: outcomes.CycleResult) -> None:
        with self._lock:
            self._cycles.append(result.to_json())

    def cycles(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._cycles)


class LiveRollouts:
    """Each service's Deployment, in words ("complete, 1/1 ready"), read at most every
    :data:`LIVE_SECONDS`; ``read`` gets a Deployment by name (None when absent)."""

    def __init__(
        self, read: Callable[[str], kube.Object | None], deployments: Mapping[str, str]
    ) -> None:
        self._read = read
        self._deployments = dict(deployments)
        self._lock = threading.Lock()
        self._at = -LIVE_SECONDS
        self._states: dict[str, str] = {}

    def states(self) -> dict[str, str]:
        with self._lock:
            if time.monotonic() - self._at >= LIVE_SECONDS:
                self._states = self._read_all()
                self._at = time.monotonic()
            return dict(self._states)

    def _read_all(self) -> dict[str, str]:
        states: dict[str, str] = {}
        for service, name in self._deployments.items():
            try:
                found = self._read(name)
            except Exception as exc:  # an API blink must not break the page
                states[service] = f"unknown ({type(exc).__name__})"
                continue
            states[service] = "absent" if found is None else rollout.describe_deployment(found)
        return states


def _in_cycle(cycle: Mapping[str, Any], service: str) -> bool:
    return any(service in cycle.get(key, ()) for key in ("built", "reused", "pushed"))


def service_rows(
    saved: state.State, cycles: Sequence[Mapping[str, Any]], live: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """Per deployed service: tag, digest, image, rollout state and since when it runs."""
    rows: dict[str, dict[str, Any]] = {}
    for name, image in sorted(saved.services.items()):
        deployed_at = None
        derived = "deployed"
        for cycle in reversed(cycles):
            diagnosis = cycle.get("diagnosis") or {}
            if cycle.get("outcome") == "rolled-back" and diagnosis.get("service") == name:
                derived = f"rolled back ({diagnosis.get('reason')})"
                break
            if cycle.get("outcome") == "trial-failed" and diagnosis.get("service") == name:
                derived = f"kept: the new image failed its trial ({diagnosis.get('reason')})"
                break
            if cycle.get("outcome") == "converged" and _in_cycle(cycle, name):
                deployed_at = cycle.get("finished_at")
                derived = "ready"
                break
        rows[name] = {
            "tag": image.tag,
            "digest": image.digest,
            "image": image.image,
            "rollout": live.get(name, derived),
            "deployed_at": deployed_at,
        }
    return rows


def last_failed_cycle(
    cycles: Sequence[Mapping[str, Any]], saved: state.State
) -> dict[str, Any] | None:
    """The newest failed cycle (with its diagnosis), else what the state file remembers."""
    for cycle in reversed(cycles):
        if cycle.get("outcome") in _FAILED:
            return dict(cycle)
    return dict(saved.last_failure) if saved.last_failure else None


@dataclasses.dataclass(frozen=True)
class Live:
    """What only the running daemon knows; ``status`` run as a command has none of it."""

    pid: int
    started_at: float
    #: the result of the daemon's last cycle, newer than the state file's history
    last: outcomes.CycleResult | None = None
    #: the daemon's timeline (:class:`Timeline`), longer than the state file's history
    cycles: Sequence[Mapping[str, Any]] = ()
    #: what the daemon's drift watch found last
    drift: Sequence[drifting.Drift] = ()


def status_document(
    config: settings.Settings,
    live: Live | None = None,
    *,
    rollouts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The one status document: ``status --json`` prints it, ``/status`` serves it.

    Both have the same keys, read from the same state directory: the saved state, the
    app URL the cluster provider gave (:mod:`reconciler.cluster.app_urls`, also under
    ``cluster``) and the daemon's lock. Only the running daemon fills what it alone
    knows, from ``live``; without it ``daemon.started_at`` and ``drift`` are null, the
    daemon's PID is the lock holder's, and the cycles are the state file's history.
    ``rollouts`` are the Deployments' states read from the cluster (by the daemon, or
    ``status --live``); without them a service's rollout is what its last cycles say.
    Never a secret.
    """
    state_dir = config.repo_path(config.state_dir)
    loaded = state.load(state_dir)
    saved = loaded.state
    recent = (list(live.cycles) if live else []) or saved.history
    if live is not None and live.last is not None:
        last_cycle: dict[str, Any] | None = live.last.to_json()
    else:
        last_cycle = saved.history[-1] if saved.history else None
    cluster = app_urls.recorded(state_dir)
    return {
        "repository": str(config.repo),
        "mode": config.mode.value,
        "namespace": config.namespace,
        "release": config.release,
        "revision": saved.revision,
        "daemon": {
            "pid": live.pid if live else locking.holder(state_dir),
            "started_at": live.started_at if live else None,
            "status_url": f"http://127.0.0.1:{config.status_port}/status",
        },
        # Only ever the provider's URL: the node's address is often not reachable from
        # this machine (kind, minikube's docker driver), and the provider knows that.
        "app_url": (cluster or {}).get("app_url", ""),
        "cluster": cluster,
        "services": service_rows(saved, recent, rollouts or {}),
        "last_cycle": last_cycle,
        "last_failure": saved.last_failure,
        "last_failed_cycle": last_failed_cycle(recent, saved),
        "drift": [item.to_json() for item in live.drift] if live else None,
        "state_problem": loaded.problem or None,
    }
