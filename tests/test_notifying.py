"""Webhook notifications, delivered to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import pathlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import fakes
import pytest

from reconciler import discovery, settings
from reconciler.cluster import rollout
from reconciler.cycle import outcomes, reconciling
from reconciler.daemon import notifying, running
from reconciler.releasing import drifting

SECRET_LOG_LINE = "JWT_SECRET_KEY=do-not-send-me"


class Receiver:
    """A webhook receiver: records every POST; can hold requests or answer with an error."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                receiver.arrived.set()
                receiver.release.wait(30)
                if receiver.status == 200:
                    receiver.bodies.append(body)
                    receiver.paths.append(self.path)
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/T0/B0/token-in-path"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver()
    yield started
    started.stop()


def _diagnosis() -> rollout.Diagnosis:
    return rollout.Diagnosis(
        service="backend",
        reason=rollout.FailureReason.CRASH_LOOP,
        summary="the container exited 1 three times",
        pod="backend-5c9d7-x2k",
        logs=("Traceback (most recent call last):", SECRET_LOG_LINE),
        events=("Warning BackOff: Back-off restarting failed container",),
    )


def _result(outcome: outcomes.Outcome, **fields: Any) -> outcomes.CycleResult:
    return outcomes.CycleResult(outcome, f"{outcome.value}: what happened", **fields)


ALL_RESULTS = [
    _result(outcomes.Outcome.CONVERGED, built=("backend",), revision=12, source="worktree abc"),
    _result(outcomes.Outcome.NOTHING_TO_DO, revision=12),
    _result(outcomes.Outcome.BUILD_FAILED, reused=("frontend",)),
    _result(outcomes.Outcome.PUSH_FAILED, pushed=()),
    _result(outcomes.Outcome.CHART_REJECTED),
    _result(outcomes.Outcome.ROLLED_BACK, built=("backend",), diagnosis=_diagnosis(), revision=14),
    _result(outcomes.Outcome.BLOCKED),
    _result(outcomes.Outcome.SKIPPED_KNOWN_FAILURE),
    _result(outcomes.Outcome.RETRY, retry_after=5),
    _result(outcomes.Outcome.PAUSED, retry_after=2),
]


def _notifier(*urls: str, **options: Any) -> notifying.Notifier:
    return notifying.Notifier(urls, release="lumina-todo", namespace="lumina", **options)


def test_exactly_one_notification_per_notable_outcome_with_its_fields(
    receiver: Receiver,
) -> None:
    notifier = _notifier(receiver.url)
    try:
        queued = [notifier.cycle_ended(result) for result in ALL_RESULTS]
        assert notifier.drain(20)
    finally:
        notifier.stop()
    assert queued == [True, False, True, True, True, True, True, False, False, False]
    got = [body["outcome"] for body in receiver.bodies]
    assert sorted(got) == sorted(
        ["converged", "build-failed", "push-failed", "chart-rejected", "rolled-back", "blocked"]
    )
    assert receiver.paths == ["/hooks/T0/B0/token-in-path"] * 6
    by_outcome = {body["outcome"]: body for body in receiver.bodies}
    converged = by_outcome["converged"]
    assert converged["services"] == ["backend"] and converged["revision"] == 12
    assert converged["message"] == "converged: what happened"
    assert converged["source"] == "worktree abc" and converged["release"] == "lumina-todo"
    assert converged["text"].startswith(":white_check_mark: lumina-todo: converged (backend)")
    rolled_back = by_outcome["rolled-back"]
    assert rolled_back["diagnosis"] == {
        "service": "backend",
        "reason": "CrashLoopBackOff",
        "summary": "the container exited 1 three times",
        "pod": "backend-5c9d7-x2k",
    }
    assert "backend: CrashLoopBackOff — the container exited 1 three times" in rolled_back["text"]
    # Log lines and events may hold anything a service printed: never sent.
    for body in receiver.bodies:
        assert SECRET_LOG_LINE not in json.dumps(body)
        assert "Back-off" not in json.dumps(body)
        assert set(body) >= {"text", "outcome", "services", "revision", "message", "diagnosis"}


def test_the_same_failure_in_a_row_and_the_same_drift_are_said_once(
    receiver: Receiver,
) -> None:
    refused = _result(outcomes.Outcome.PUSH_FAILED)
    drift = [drifting.Drift("frontend", "Deployment", "frontend", "spec.replicas", 1, 2)]
    notifier = _notifier(receiver.url)
    try:
        assert notifier.cycle_ended(refused)
        assert not notifier.cycle_ended(refused)  # the registry refuses every 30 s
        assert notifier.drift_found(drift, 7)
        assert not notifier.drift_found(drift, 7)  # the watch sees it again a minute later
        assert not notifier.drift_found([], 7)  # corrected
        assert notifier.drift_found(drift, 8)  # made again by hand: said again
        assert notifier.drain(20)
    finally:
        notifier.stop()
    assert [body["outcome"] for body in receiver.bodies] == [
        "push-failed",
        "drift-found",
        "drift-found",
    ]
    found = receiver.bodies[1]
    assert found["services"] == ["frontend"] and found["revision"] == 7
    assert "frontend: Deployment/frontend spec.replicas" in found["text"]


def test_a_failing_receiver_is_logged_once_and_its_recovery_once(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        down = f"http://127.0.0.1:{port}/secret-token"
    caplog.set_level(logging.INFO, logger="lumina.notify")
    receiver.status = 500
    notifier = _notifier(down, receiver.url, retry_delays=(0.01, 0.01))
    try:
        for number in range(3):
            notifier.cycle_ended(_result(outcomes.Outcome.CONVERGED, revision=number))
        assert notifier.drain(20)
        receiver.status = 200
        notifier.cycle_ended(_result(outcomes.Outcome.CONVERGED, revision=3))
        assert notifier.drain(20)
    finally:
        notifier.stop()
    said = [record.getMessage() for record in caplog.records]
    assert len([line for line in said if f"127.0.0.1:{port}" in line]) == 1, said
    answers = [line for line in said if f":{receiver.server.server_port}" in line]
    assert len(answers) == 2, said
    assert "cannot notify" in answers[0] and "delivered again" in answers[1]
    assert not any("secret-token" in line or "token-in-path" in line for line in said), said
    assert [body["revision"] for body in receiver.bodies] == [3]


def test_the_daemon_returns_the_cycle_before_its_notification_is_delivered(
    project: pathlib.Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver that holds the request: the cycle's result is back while it still waits."""
    monkeypatch.setenv("LUMINA_NOTIFY_WEBHOOKS", receiver.url)
    config = settings.load_settings(project)
    box = fakes.toolbox(config, discovery.discover_services(project).plugins).box
    converged = _result(outcomes.Outcome.CONVERGED, built=("backend",), revision=5)

    async def cycle(*_args: Any, **_kwargs: Any) -> outcomes.CycleResult:
        return converged

    monkeypatch.setattr(reconciling, "run_cycle", cycle)
    receiver.release.clear()
    daemon = running.Daemon(box)
    try:
        assert daemon.notifier.urls == (receiver.url,)
        result = asyncio.run(daemon._cycle(first=True))
        assert result is converged
        assert receiver.arrived.wait(10), "the notification was never sent"
        assert receiver.bodies == []  # still held by the receiver: not delivered yet
        receiver.release.set()
        assert daemon.notifier.drain(20)
    finally:
        daemon.notifier.stop()
    assert [body["revision"] for body in receiver.bodies] == [5]


def test_a_receiver_answering_garbage_is_a_failed_delivery_and_later_ones_still_arrive(
    receiver: Receiver,
) -> None:
    """Issue 23: a garbage reply (``http.client.BadStatusLine``) ended the delivery
    thread, and every later webhook was silently lost."""
    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen()

    def answer_garbage() -> None:
        while True:
            try:
                connection, _ = garbage.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(b"this is not HTTP\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    bad = f"http://127.0.0.1:{garbage.getsockname()[1]}/hook"
    notifier = _notifier(bad, receiver.url, retry_delays=(0.01,))
    try:
        notifier.cycle_ended(_result(outcomes.Outcome.CONVERGED, revision=1))
        assert notifier.drain(20)
        notifier.cycle_ended(_result(outcomes.Outcome.CONVERGED, revision=2))
        assert notifier.drain(20)
    finally:
        notifier.stop()
        garbage.close()
    assert [body["revision"] for body in receiver.bodies] == [1, 2]


def test_a_hung_receiver_costs_one_timeout_per_try_and_never_holds_the_cycle_or_the_stop(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 23, hangs: a receiver that accepts and never answers. Each delivery to it
    ends at the notifier's timeout, saying so; the cycle's notification returns at once;
    the other receiver still gets every message; and ``stop`` does not wait on it."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepted by the kernel, never answered
    hung = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    notifier = _notifier(hung, receiver.url, retry_delays=())
    try:
        with caplog.at_level(logging.WARNING, logger="lumina.notify"):
            handed_over = time.monotonic()
            notifier.cycle_ended(_result(outcomes.Outcome.CONVERGED, revision=1))
            returned = time.monotonic() - handed_over
            notifier.cycle_ended(_result(outcomes.Outcome.ROLLED_BACK, revision=2))
            # Two deliveries to the hung one, each ended by its timeout, then the drain.
            drained = notifier.drain(4 * notifying.TIMEOUT_SECONDS + 5)
    finally:
        stopping = time.monotonic()
        notifier.stop()
        stopped = time.monotonic() - stopping
        silent.close()
    assert returned < notifying.TIMEOUT_SECONDS, "the cycle waited for the hung receiver"
    assert drained, "a delivery to the hung receiver did not end at its timeout"
    assert [body["revision"] for body in receiver.bodies] == [1, 2]
    said = " ".join(record.getMessage() for record in caplog.records)
    assert "127.0.0.1" in said and "timed out" in said, said
    assert stopped < notifying.TIMEOUT_SECONDS, "stop waited for the hung receiver"
