"""Services' logs in the loop: every pod of the chosen services, followed across rollouts.

Who calls it: the ``logs`` command (:mod:`reconciler.cli.logs_command`). One Pod watch
per service (:meth:`reconciler.cluster.kube.Kube.watch`) tells when pods come and go;
each container that has started is read by a thread of its own
(:meth:`~reconciler.cluster.kube.Kube.follow_pod_log`) until it stops. Containers already
running when the command starts show their last ``tail`` lines; any container that
starts later — a new pod of a rollout, a restart — is shown from its first line, so
the stream goes on across a rollout without a gap. Each stream opens with a header
naming its pod, and every line is handed to ``emit`` with its service.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Protocol

from reconciler import errors
from reconciler.cluster import kube

NAME_LABEL = "app.kubernetes.io/name"


class PodLogs(Protocol):
    """What following logs needs of :class:`reconciler.cluster.kube.Kube`."""

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[kube.Object]: ...

    def watch(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        on_change: Callable[[], None],
        stop: threading.Event,
        window_seconds: int = 10,
    ) -> None: ...

    def follow_pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int | None
    ) -> Iterator[str]: ...

    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int | None
    ) -> str: ...


@dataclasses.dataclass(frozen=True)
class Started:
    """A container's stream begins: ``pod``'s ``container`` (its ``restart``-th run)."""

    pod: str
    container: str
    restart: int


#: ``emit(service, started, line)``: ``started`` set for a stream's header, else a line
Emit = Callable[[str, Started | None, str], None]


def started_containers(pod: kube.Object) -> list[tuple[str, int]]:
    """The containers of ``pod`` that have a log to read now: (name, restart count)."""
    found = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        state = status.get("state") or {}
        if state.get("running") or state.get("terminated"):
            found.append((str(status.get("name", "")), int(status.get("restartCount", 0))))
    return found


class LogFollower:
    """Follows the pods of ``services`` (service name -> value of the name label)."""

    def __init__(
        self,
        source: PodLogs,
        namespace: str,
        services: Mapping[str, str],
        emit: Emit,
        *,
        tail: int | None,
    ) -> None:
        self._source = source
        self._namespace = namespace
        self._services = dict(services)
        self._emit = emit
        self._tail = tail
        self._lock = threading.Lock()
        #: (pod uid, container, restart count) of every stream started
        self._streamed: set[tuple[str, str, int]] = set()
        self.threads: list[threading.Thread] = []

    def scan(self, service: str, *, first: bool = False) -> None:
        """Start a stream for each container of ``service`` that has started since."""
        for pod in self._pods(service):
            name = str(pod["metadata"]["name"])
            uid = str(pod["metadata"].get("uid", name))
            for container, restart in started_containers(pod):
                key = (uid, container, restart)
                with self._lock:
                    if key in self._streamed:
                        continue
                    self._streamed.add(key)
                started = Started(name, container, restart)
                thread = threading.Thread(
                    target=self._stream,
                    args=(service, started, self._tail if first else None),
                    name=f"log-{name}-{container}",
                    daemon=True,
                )
                self.threads.append(thread)
                thread.start()

    def _pods(self, service: str) -> list[kube.Object]:
        pods = self._source.list(
            "v1", "Pod", self._namespace, label_selector=f"{NAME_LABEL}={self._services[service]}"
        )
        return sorted(pods, key=lambda pod: str(pod["metadata"].get("creationTimestamp") or ""))

    def show_recent(self) -> None:
        """The last ``tail`` lines of every started container, service by service."""
        for service in self._services:
            for pod in self._pods(service):
                name = str(pod["metadata"]["name"])
                for container, restart in started_containers(pod):
                    self._emit(service, Started(name, container, restart), "")
                    text = self._source.pod_log(
                        self._namespace, name, container, previous=False, lines=self._tail
                    )
                    for line in text.splitlines():
                        self._emit(service, None, line)

    def _stream(self, service: str, started: Started, tail: int | None) -> None:
        self._emit(service, started, "")
        try:
            for line in self._source.follow_pod_log(
                self._namespace, started.pod, started.container, tail_lines=tail
            ):
                self._emit(service, None, line)
        except errors.LuminaError as exc:  # the API went away mid-stream: say so, go on
            self._emit(service, None, f"(log of {started.pod} interrupted: {exc.message})")

    def follow(self, stop: threading.Event) -> None:
        """Stream until ``stop`` is set: what runs now, then every container that starts."""
        for service in self._services:
            self.scan(service, first=True)
        for service in self._services:
            watcher = threading.Thread(
                target=self._source.watch,
                args=("Pod", self._namespace, f"{NAME_LABEL}={self._services[service]}"),
                kwargs={
                    "on_change": lambda service=service: self._rescan(service),
                    "stop": stop,
                },
                name=f"pod-watch-{service}",
                daemon=True,
            )
            watcher.start()
        stop.wait()

    def _rescan(self, service: str) -> None:
        try:
            self.scan(service)
        except Exception as exc:  # an API blink: the next change scans again
            self._emit(service, None, f"(could not list pods: {exc})")
