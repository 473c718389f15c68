"""The daemon's lock and status endpoint, with real processes and real sockets."""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

import pytest

from reconciler.cycle import metrics
from reconciler.daemon import locking, serving


def test_second_holder_is_refused_with_the_first_pid(tmp_path: pathlib.Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import pathlib, time
            from reconciler.daemon import locking
            lock = locking.RepositoryLock(pathlib.Path({str(tmp_path)!r}))
            lock.acquire()
            print("locked", flush=True)
            time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert locking.holder(tmp_path) == holder.pid
        with pytest.raises(locking.AlreadyRunningError, match=f"PID {holder.pid}"):
            locking.RepositoryLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    # SIGKILL released the kernel lock: no stale lock survives a crash.
    assert locking.holder(tmp_path) is None
    lock = locking.RepositoryLock(tmp_path)
    lock.acquire()
    lock.release()


def test_status_endpoint_is_loopback_only_and_serves_json_and_metrics() -> None:
    registry = metrics.Metrics()
    registry.cycles.labels("converged").inc()
    server = serving.StatusServer(0, lambda: {"revision": 3, "services": {}}, registry)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert urllib.request.urlopen(f"{base}/healthz", timeout=5).read() == b"ok\n"
        assert (
            json.loads(urllib.request.urlopen(f"{base}/status", timeout=5).read())["revision"] == 3
        )
        text = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert 'lumina_cycles_total{outcome="converged"} 1.0' in text
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/nope", timeout=5)
        listening = subprocess.run(
            ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
        ).stdout
        local_addresses = [line.split()[3] for line in listening.splitlines()]
        assert local_addresses == [f"127.0.0.1:{server.port}"]
    finally:
        server.stop()
    time.sleep(0.1)


def test_an_idle_client_blocks_neither_healthz_nor_the_shutdown() -> None:
    """Issue 23: one connection that sends nothing made /healthz time out and held
    ``stop()`` until the client left (the server took one request at a time)."""
    server = serving.StatusServer(0, lambda: {}, metrics.Metrics())
    server.start()
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        time.sleep(0.2)  # the server has accepted it and waits for a request line
        started = time.monotonic()
        answer = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=3)
        assert answer.read() == b"ok\n"
        # The answer came while the idle client still held its connection, well inside
        # the client's own 3 s timeout (so nothing waited for the idle one to go away).
        assert time.monotonic() - started < serving.REQUEST_TIMEOUT
        stopping = threading.Thread(target=server.stop)
        stopping.start()
        stopping.join(3)
        assert not stopping.is_alive(), "stop() is held by an idle client"
    finally:
        idle.close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_status_probe_on_a_dead_daemons_lock_does_not_refuse_a_start(
    tmp_path: pathlib.Path,
) -> None:
    """holder()'s probe holds the lock for a moment; the file names a daemon long dead."""
    (tmp_path / locking.LOCK_FILE).write_text(str(_dead_pid()), encoding="utf-8")

    probe = open(tmp_path / locking.LOCK_FILE, encoding="utf-8")  # noqa: SIM115
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    released = threading.Event()

    def end_probe() -> None:
        time.sleep(0.2)
        fcntl.flock(probe, fcntl.LOCK_UN)
        probe.close()
        released.set()

    threading.Thread(target=end_probe).start()
    lock = locking.RepositoryLock(tmp_path)
    lock.acquire(grace_seconds=10.0)
    # The start waited for the probe to end, not for the grace to run out.
    assert released.is_set()
    assert (tmp_path / locking.LOCK_FILE).read_text(encoding="utf-8") == str(os.getpid())
    lock.release()


def test_a_lock_held_past_the_grace_names_no_dead_pid(tmp_path: pathlib.Path) -> None:
    (tmp_path / locking.LOCK_FILE).write_text(str(_dead_pid()), encoding="utf-8")

    with open(tmp_path / locking.LOCK_FILE, encoding="utf-8") as held:
        fcntl.flock(held, fcntl.LOCK_SH | fcntl.LOCK_NB)
        with pytest.raises(locking.AlreadyRunningError) as raised:
            locking.RepositoryLock(tmp_path).acquire(grace_seconds=0.1)
    assert raised.value.pid == ""
    assert "PID unknown" in str(raised.value)
