"""Webhook notifications: a JSON POST for each cycle outcome a person should hear about.

Who calls it: the daemon (:mod:`reconciler.daemon.running`), after every cycle
(:meth:`Notifier.cycle_ended`) and when its drift watch finds hand-made changes
(:meth:`Notifier.drift_found`). Sending never delays a cycle: documents go into a
bounded queue and one background thread delivers them, with a few retries; when the
queue is full the newest document is dropped (and that is logged once). A receiver
that fails is logged once, not on every attempt, and once more when it answers again.
A webhook URL often carries a token (Slack's do), so logs name only its scheme and host.

A document holds the outcome, the services, the revision, the message and the
diagnosis' summary (service, reason, summary, pod) — never a log line or an event,
which may hold anything a service printed, and never a setting or secret value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from reconciler import settings
from reconciler.cycle import outcomes
from reconciler.releasing import drifting

log = logging.getLogger("lumina.notify")

#: what is worth a message; nothing-to-do, retry, paused and skipped-known-failure are not
NOTABLE = frozenset(
    {
        outcomes.Outcome.CONVERGED,
        outcomes.Outcome.ROLLED_BACK,
        outcomes.Outcome.TRIAL_FAILED,
        outcomes.Outcome.BUILD_FAILED,
        outcomes.Outcome.PUSH_FAILED,
        outcomes.Outcome.CHART_REJECTED,
        outcomes.Outcome.BLOCKED,
    }
)
DRIFT_FOUND = "drift-found"
QUEUE_SIZE = 100
#: seconds to wait before the 2nd and 3rd attempt of one delivery
RETRY_DELAYS = (1.0, 4.0)
TIMEOUT_SECONDS = 5.0
_ICONS = {
    "converged": ":white_check_mark:",
    "rolled-back": ":rewind:",
    "trial-failed": ":no_entry:",
    DRIFT_FOUND: ":warning:",
}


def where(url: str) -> str:
    """A webhook URL as logs may show it: scheme and host, never its path or query."""
    return settings.shown_url(url)


def _services(result: outcomes.CycleResult) -> list[str]:
    named = {*result.built, *result.reused, *result.pushed, *result.in_registry}
    if result.diagnosis is not None:
        named.add(result.diagnosis.service)
    return sorted(named)


def cycle_document(result: outcomes.CycleResult, *, release: str, namespace: str) -> dict[str, Any]:
    """The JSON a receiver gets for one cycle (Slack reads ``text``; others the fields)."""
    services = _services(result)
    diagnosis = (
        {
            "service": result.diagnosis.service,
            "reason": result.diagnosis.reason.value,
            "summary": result.diagnosis.summary,
            "pod": result.diagnosis.pod,
        }
        if result.diagnosis is not None
        else None
    )
    first_line = result.message.splitlines()[0] if result.message else ""
    text = f"{_ICONS.get(result.outcome.value, ':x:')} {release}: {result.outcome.value}"
    if services:
        text += f" ({', '.join(services)})"
    if result.revision is not None:
        text += f", revision {result.revision}"
    text += f" — {first_line}"
    if diagnosis is not None:
        text += f"\n{diagnosis['service']}: {diagnosis['reason']} — {diagnosis['summary']}"
    return {
        "text": text,
        "outcome": result.outcome.value,
        "release": release,
        "namespace": namespace,
        "services": services,
        "revision": result.revision,
        "source": result.source,
        "message": result.message,
        "diagnosis": diagnosis,
        "finished_at": result.finished_at,
    }


def drift_document(
    found: Sequence[drifting.Drift], *, release: str, namespace: str, revision: int | None
) -> dict[str, Any]:
    services = sorted({item.service for item in found})
    lines = [item.describe() for item in found]
    return {
        "text": f"{_ICONS[DRIFT_FOUND]} {release}: drift found ({', '.join(services)})\n"
        + "\n".join(lines[:10]),
        "outcome": DRIFT_FOUND,
        "release": release,
        "namespace": namespace,
        "services": services,
        "revision": revision,
        "source": "",
        "message": "; ".join(lines),
        "diagnosis": None,
        "finished_at": time.time(),
    }


def post_json(url: str, document: dict[str, Any]) -> None:
    """One delivery attempt: raises ``OSError`` (``URLError``, ``HTTPError``) on failure."""
    request = urllib.request.Request(  # noqa: S310 — the settings only accept http(s) URLs
        url,
        data=json.dumps(document).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "lumina-reconcile"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
        response.read()


@dataclasses.dataclass(frozen=True)
class _Delivery:
    url: str
    document: dict[str, Any]


class Notifier:
    """Queues documents for every URL and delivers them from one background thread."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        release: str,
        namespace: str,
        send: Callable[[str, dict[str, Any]], None] = post_json,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.urls = tuple(urls)
        self._release, self._namespace = release, namespace
        self._send = send
        self._retry_delays = tuple(retry_delays)
        self._queue: queue.Queue[_Delivery | None] = queue.Queue(maxsize=queue_size)
        self._failing: set[str] = set()
        self._dropping = False
        self._last_said: tuple[str, str] | None = None
        self._drift_said: frozenset[str] = frozenset()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._deliver_all, name="notifier", daemon=True)
        if self.urls:
            self._thread.start()

    def cycle_ended(self, result: outcomes.CycleResult) -> bool:
        """Queue a notification if ``result`` is worth one; True when one was queued.

        The same failure twice in a row (a registry refusing every 30 s) is said once.
        """
        if not self.urls or result.outcome not in NOTABLE:
            return False
        said = (result.outcome.value, result.message)
        if said == self._last_said and not result.outcome.converged:
            return False
        self._last_said = said
        self._enqueue(cycle_document(result, release=self._release, namespace=self._namespace))
        return True

    def drift_found(self, found: Sequence[drifting.Drift], revision: int | None) -> bool:
        """Queue a notification for drift not already reported (the watch repeats itself)."""
        described = frozenset(item.describe() for item in found)
        if not described:
            self._drift_said = frozenset()
            return False
        if not self.urls or described == self._drift_said:
            return False
        self._drift_said = described
        self._enqueue(
            drift_document(
                found, release=self._release, namespace=self._namespace, revision=revision
            )
        )
        return True

    def _enqueue(self, document: dict[str, Any]) -> None:
        for url in self.urls:
            try:
                self._queue.put_nowait(_Delivery(url, document))
            except queue.Full:
                if not self._dropping:
                    log.warning(
                        "notifications are piling up (%d queued): dropping new ones until "
                        "the receivers catch up",
                        self._queue.qsize(),
                    )
                self._dropping = True
                return
        self._dropping = False

    def _deliver_all(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._deliver(item)
            except Exception:  # a bug here must not silence every later notification
                log.exception(
                    "notification to %s failed unexpectedly", where(item.url) if item else "-"
                )
            finally:
                self._queue.task_done()

    def _deliver(self, item: _Delivery) -> None:
        error: Exception | None = None
        for delay in (0.0, *self._retry_delays):
            if delay and self._stopping.wait(delay):
                return
            try:
                self._send(item.url, item.document)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                # HTTPException: a receiver that answers garbage (BadStatusLine) is a
                # failed delivery like any other, not the end of the delivery thread.
                error = exc
                continue
            if item.url in self._failing:
                self._failing.discard(item.url)
                log.info("notifications to %s are delivered again", where(item.url))
            return
        if item.url not in self._failing:
            self._failing.add(item.url)
            log.warning(
                "cannot notify %s (%s, %d attempts); said once, not on every failure",
                where(item.url),
                error,
                1 + len(self._retry_delays),
            )

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the queue to empty (tests, shutdown); True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return self._queue.unfinished_tasks == 0

    def stop(self) -> None:
        """Stop delivering: a delivery between retries is given up; the thread ends."""
        if not self._thread.is_alive():
            return
        self._stopping.set()
        with contextlib.suppress(queue.Full):  # a daemon thread: it ends with the process
            self._queue.put_nowait(None)
