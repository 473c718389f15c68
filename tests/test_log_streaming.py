"""Following services' logs across a rollout, on recorded Pod objects and scripted streams.

The cluster side (watch, log stream) is a stand-in with the shape of
:class:`reconciler.cluster.kube.Kube`; ``tests/e2e/test_6_logs.py`` runs the same on the
real cluster.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from reconciler.cluster import log_streaming


def _pod(name: str, uid: str, *, running: bool = True, restarts: int = 0) -> dict[str, Any]:
    state = {"running": {"startedAt": "now"}} if running else {"waiting": {"reason": "x"}}
    return {
        "metadata": {"name": name, "uid": uid, "creationTimestamp": f"2026-11-28T10:00:0{uid}Z"},
        "status": {
            "containerStatuses": [{"name": "backend", "restartCount": restarts, "state": state}]
        },
    }


class Cluster:
    """Pods that change on demand, and one scripted log stream per container run."""

    def __init__(self) -> None:
        self.pods: list[dict[str, Any]] = []
        self.streams: dict[tuple[str, int], queue.Queue[str | None]] = {}
        self.tails: dict[str, int | None] = {}
        self.changed = threading.Event()

    def stream(self, pod: str, restart: int = 0) -> queue.Queue[str | None]:
        return self.streams.setdefault((pod, restart), queue.Queue())

    def list(self, api_version: str, kind: str, namespace: str | None, **_: str) -> list[Any]:
        return list(self.pods)

    def watch(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        on_change: Callable[[], None],
        stop: threading.Event,
        window_seconds: int = 10,
    ) -> None:
        assert label_selector == "app.kubernetes.io/name=backend"
        while not stop.is_set():
            if self.changed.wait(0.05):
                self.changed.clear()
                on_change()

    def follow_pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int | None
    ) -> Iterator[str]:
        self.tails[pod] = tail_lines
        restart = next(
            status["restartCount"]
            for item in self.pods
            if item["metadata"]["name"] == pod
            for status in item["status"]["containerStatuses"]
        )
        lines = self.stream(pod, restart)
        while (line := lines.get(timeout=10)) is not None:
            yield line

    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int | None
    ) -> str:
        return "x1\nx2\n"


def _wait(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_rollout_continues_the_stream_with_the_new_pod_from_its_first_line() -> None:
    cluster = Cluster()
    cluster.pods = [_pod("backend-old", "1"), _pod("backend-waiting", "2", running=False)]
    said: list[str] = []

    def emit(service: str, started: log_streaming.Started | None, line: str) -> None:
        said.append(f"{service} | " + (f"-- {started.pod} #{started.restart}" if started else line))

    follower = log_streaming.LogFollower(cluster, "lumina", {"backend": "backend"}, emit, tail=2)
    stop = threading.Event()
    running = threading.Thread(target=follower.follow, args=(stop,), daemon=True)
    running.start()
    try:
        old = cluster.stream("backend-old")
        for line in ("old 1", "old 2", "Shutting down"):
            old.put(line)
        old.put(None)  # the old container stops (Recreate)
        _wait(lambda: said[-1:] == ["backend | Shutting down"])
        cluster.pods = [_pod("backend-new", "3")]
        new = cluster.stream("backend-new")
        new.put("Application startup complete.")
        cluster.changed.set()
        _wait(lambda: said[-1:] == ["backend | Application startup complete."])
        new.put(None)
        cluster.pods = [_pod("backend-new", "3", restarts=1)]  # it crashed and restarted
        cluster.stream("backend-new", 1).put("started again")
        cluster.changed.set()
        _wait(lambda: said[-1:] == ["backend | started again"])
        cluster.changed.set()  # the same pods again: no second stream of any container
        time.sleep(0.2)
    finally:
        stop.set()
        running.join(5)
        cluster.stream("backend-new", 1).put(None)
    assert said == [
        "backend | -- backend-old #0",
        "backend | old 1",
        "backend | old 2",
        "backend | Shutting down",
        "backend | -- backend-new #0",
        "backend | Application startup complete.",
        "backend | -- backend-new #1",
        "backend | started again",
    ]
    # Running when the command started: its tail; started later: from the first line.
    assert cluster.tails == {"backend-old": 2, "backend-new": None}


def test_without_follow_the_last_lines_of_each_started_container() -> None:
    cluster = Cluster()
    cluster.pods = [_pod("backend-a", "1"), _pod("backend-b", "2", running=False)]
    said: list[str] = []
    follower = log_streaming.LogFollower(
        cluster,
        "lumina",
        {"backend": "backend"},
        lambda service, started, line: said.append(started.pod if started else line),
        tail=2,
    )
    follower.show_recent()
    assert said == ["backend-a", "x1", "x2"]
