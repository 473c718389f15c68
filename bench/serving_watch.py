"""What a service's pods serve, seen from the bench process as it changes.

A thread watches the service's pods through the API (the reconciler's own
``Kube.watch``) and, on every change, reads what they serve (``stack.running_image``)
and notes the monotonic time: when a pod of each image tag was first Ready, and every
span in which no pod was Ready and not terminating (what the Service's endpoints would
hold). A change is seen a list call (~10-30 ms) after it happens; that is the
measurement's resolution.
"""

from __future__ import annotations

import threading
import time

from bench import stack
from reconciler.cluster import kube


class ServingWatch:
    def __init__(self, connection: kube.Kube, namespace: str, service: str) -> None:
        self._connection = connection
        self._namespace = namespace
        self._service = service
        self._selector = f"app.kubernetes.io/name={service}"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self.first_ready: dict[str, float] = {}
        self.gaps: list[tuple[float, float]] = []
        self._gap_since: float | None = None
        self._thread = threading.Thread(
            target=connection.watch,
            args=("Pod", namespace, self._selector),
            kwargs={"on_change": self._seen, "stop": self._stop, "window_seconds": 5},
            name=f"bench-serving-{service}",
            daemon=True,
        )

    def __enter__(self) -> ServingWatch:
        self._seen()
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _serving_tags(self) -> set[str]:
        images = stack.running_image(self._connection, self._namespace, self._service)
        return {image.rpartition(":")[2] for image in images["ready_images"]}

    def _seen(self) -> None:
        try:
            tags = self._serving_tags()
        except Exception:  # an API blink: the next change lists again
            return
        now = time.monotonic()
        with self._changed:
            for tag in tags:
                self.first_ready.setdefault(tag, now)
            if not tags and self._gap_since is None:
                self._gap_since = now
            elif tags and self._gap_since is not None:
                self.gaps.append((self._gap_since, now))
                self._gap_since = None
            self._changed.notify_all()

    def known(self) -> set[str]:
        with self._lock:
            return set(self.first_ready)

    def wait_new(self, known: set[str], timeout: float) -> tuple[str, float] | None:
        """The first tag not in ``known`` to be Ready, and when; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                new = {t: at for t, at in self.first_ready.items() if t not in known}
                if new:
                    tag = min(new, key=new.__getitem__)
                    return tag, new[tag]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 1.0))

    def unserved_between(self, start: float, end: float) -> float:
        """Seconds between ``start`` and ``end`` in which no pod served."""
        with self._lock:
            spans = [*self.gaps]
            if self._gap_since is not None:
                spans.append((self._gap_since, end))
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
