"""Hangs are bounded: a hung API server and a hung registry each end a cycle with a
clear message within its timeout, and the daemon recovers when the hang ends (issue 23).

- **The API server.** The daemon talks to the real API server through a TCP proxy on
  127.0.0.1 that this test can freeze: frozen, it accepts and holds every byte, as a
  stopped forwarder (a wedged load balancer, a paused VM) does. Nothing is refused, so
  nothing fails fast: only a timeout can end a call. The daemon uses the ``context``
  provider with a copy of the cluster's kubeconfig that names the proxy.
- **The registry.** ``LUMINA_REGISTRY`` names a listener that accepts and never answers;
  the Docker engine asks it whether it holds the image.

A hung webhook receiver is covered at the unit level (``tests/test_notifying.py``): the
notifier's thread is the only part that talks to it.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import lumina_stack
import pytest
import yaml

API_TIMEOUT = 5.0  # LUMINA_API_TIMEOUT_SECONDS: a helm read gets twice this


class FreezableProxy:
    """A TCP forwarder to ``target`` that stops forwarding, without closing anything,
    while frozen."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.flowing = threading.Event()
        self.flowing.set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                self.flowing.wait()  # frozen: the bytes are held, nothing is closed
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.flowing.set()
        for held in self._sockets:
            with contextlib.suppress(OSError):
                held.close()


@pytest.fixture
def proxy() -> Iterator[FreezableProxy]:
    config = yaml.safe_load(lumina_stack.KUBECONFIG.read_text())
    server = next(
        entry["cluster"]["server"]
        for entry in config["clusters"]
        if entry["name"] == _cluster_of(config, lumina_stack.CONTEXT)
    )
    host, _, port = server.removeprefix("https://").rpartition(":")
    started = FreezableProxy((host, int(port)))
    yield started
    started.close()


def _cluster_of(config: dict[str, object], context: str) -> str:
    contexts = config["contexts"]
    assert isinstance(contexts, list)
    return str(next(entry["context"]["cluster"] for entry in contexts if entry["name"] == context))


def _kubeconfig_through(proxy: FreezableProxy, where: pathlib.Path) -> pathlib.Path:
    """The cluster's kubeconfig with its server moved to the proxy (the API server's
    certificate names 127.0.0.1, so TLS still verifies)."""
    config = yaml.safe_load(lumina_stack.KUBECONFIG.read_text())
    name = _cluster_of(config, lumina_stack.CONTEXT)
    for entry in config["clusters"]:
        if entry["name"] == name:
            entry["cluster"]["server"] = f"https://127.0.0.1:{proxy.port}"
    path = where / "through-proxy.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def _healthz_answers(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=3).status_code == 200


@pytest.mark.slow
def test_a_hung_api_server_ends_the_cycle_saying_so_and_the_daemon_recovers(
    workspace: pathlib.Path, proxy: FreezableProxy, tmp_path: pathlib.Path
) -> None:
    before = lumina_stack.helm_revision()
    status_port = lumina_stack.free_port()
    process = lumina_stack.daemon(
        workspace,
        env={
            "LUMINA_CLUSTER": "context",
            "KUBECONFIG": str(_kubeconfig_through(proxy, tmp_path)),
            "LUMINA_KUBE_CONTEXT": lumina_stack.CONTEXT,
            "LUMINA_API_TIMEOUT_SECONDS": str(API_TIMEOUT),
            "LUMINA_STATUS_PORT": str(status_port),
            "LUMINA_POLL_SECONDS": "2",
            "LUMINA_DEBOUNCE_SECONDS": "0.5",
        },
    )
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    try:
        log.wait_for(lambda line: "cycle 1:" in line, 180, "'cycle 1' through the proxy")
        proxy.flowing.clear()
        frozen_at = time.monotonic()
        lumina_stack.change_chart(workspace, "deployed across a hung API server")
        said = log.wait_for(
            lambda line: (
                "will retry" in line
                and (
                    "did not answer in time" in line or "no answer from the Kubernetes API" in line
                )
            ),
            120,
            "a cycle ended by the API timeout",
        )
        ended_after = time.monotonic() - frozen_at
        assert process.poll() is None, "the daemon died while the API server hung"
        assert _healthz_answers(status_port), "/healthz did not answer during the hang"
        # What ended the cycle is the timeout, not an error: nothing was refused.
        assert "refused" not in said.lower(), said
        proxy.flowing.set()
        thawed_at = time.monotonic()
        log.wait_for(
            lambda line: re.search(r"cycle \d+: converged", line) is not None,
            300,
            "a converged cycle after the hang",
        )
        recovered_after = time.monotonic() - thawed_at
    finally:
        proxy.flowing.set()
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=120)
        log.join()
    text = log.text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert lumina_stack.helm_revision() == before + 1
    lumina_stack.assert_no_pending_release()
    print(
        f"API hung: the cycle ended {ended_after:.0f}s into the hang saying: {said.strip()}; "
        f"converged {recovered_after:.0f}s after it ended"
    )
    lumina_stack.count("faults survived")


@pytest.mark.slow
def test_a_hung_registry_ends_the_cycle_saying_so_and_leaves_the_release(
    workspace: pathlib.Path,
) -> None:
    before = lumina_stack.helm_revision()
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts, never answers
    registry = f"127.0.0.1:{silent.getsockname()[1]}"
    lumina_stack.change_backend(workspace, "pushed to a hung registry")
    lumina_stack.count("faults injected")
    try:
        started = time.monotonic()
        code, output = lumina_stack.once(workspace, env={"LUMINA_REGISTRY": registry})
        took = time.monotonic() - started
    finally:
        silent.close()
    assert code != 0, output
    assert "push-failed" in output and registry in output, output[-3000:]
    # What ended it: the engine's own timeout on the registry, named in the message.
    assert "the registry did not answer in time" in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert lumina_stack.helm_revision() == before, "a failed push changed the release"
    lumina_stack.assert_no_pending_release()
    # The hang ends (here: the user goes back to loading images into the node).
    code, output = lumina_stack.once(workspace)
    assert code == 0, output[-3000:]
    assert "converged" in output, output[-3000:]
    assert lumina_stack.helm_revision() == before + 1
    print(f"registry hung: once ended after {took:.0f}s: push-failed, the release untouched")
    lumina_stack.count("faults survived")
