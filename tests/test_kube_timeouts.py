"""A hung API server ends a kube call with an error that says so, within its timeout.

The "API server" is a real TCP listener on 127.0.0.1 that accepts connections and never
answers (what a stopped forwarder in front of a real one does): the client's TLS
handshake and request then wait on a silent socket.
"""

from __future__ import annotations

import pathlib
import socket
import threading
import time

from reconciler.cluster import kube

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: hung
  cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}
users:
- name: someone
  user: {{token: not-a-secret}}
contexts:
- name: hung
  context: {{cluster: hung, user: someone}}
current-context: hung
"""


def test_a_hung_api_server_ends_the_call_within_its_timeout(tmp_path: pathlib.Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepted by the kernel, never answered
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG.format(port=silent.getsockname()[1]))
    cluster = kube.Kube(config, "hung", request_timeout=1.0)
    raised: list[BaseException] = []

    def call() -> None:
        try:
            cluster.get("v1", "Namespace", None, "lumina")
        except BaseException as exc:
            raised.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(20)  # far beyond the 1 s timeout (discovery and the read each get it)
    silent.close()
    assert not caller.is_alive(), "the call hung past its timeout"
    assert len(raised) == 1 and isinstance(raised[0], kube.ApiUnavailableError), raised
    assert "did not answer in time" in str(raised[0])
    assert time.monotonic() - started < 20
