"""The Kubernetes API server goes away for ~25 s while a change is pending.

The local cluster's kube-apiserver is stopped by its recorded PID (the way
``plugins/local_cluster/scripts/down.sh`` stops it) while the daemon runs on a clone
with a committed chart change to deploy, then brought back with ``up.sh``. The daemon
must log that it will retry, stay alive, and converge once the API is back. ``up.sh``
runs in a ``finally`` so the cluster is whole again whatever happens.

Exclusive: the API server every environment shares is stopped.
"""

from __future__ import annotations

import pathlib
import signal
import time

import lumina_stack
import pytest

PIDS = lumina_stack.CACHE / "cluster" / "pids"
UP = lumina_stack.ROOT / "plugins/local_cluster/scripts/up.sh"


pytestmark = pytest.mark.exclusive


@pytest.mark.slow
def test_daemon_retries_through_an_api_outage_and_converges(workspace: pathlib.Path) -> None:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    before = lumina_stack.helm_revision()
    process = lumina_stack.daemon(
        workspace, env={"LUMINA_POLL_SECONDS": "2", "LUMINA_DEBOUNCE_SECONDS": "0.5"}
    )
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    outage = 0.0
    try:
        try:
            log.wait_for(lambda line: "cycle 1:" in line, 120, "'cycle 1'")
            # A graceful shutdown drains watches: 20 s before KILL, as down.sh allows.
            lumina_stack.stop_process(PIDS / "kube-apiserver.pid", "kube-apiserver", 20)
            stopped_at = time.monotonic()
            lumina_stack.change_chart(workspace, "deployed across an API outage")
            log.wait_for(
                lambda line: "retry" in line.lower(), 120, "a retry line while the API is down"
            )
            time.sleep(max(0.0, 25 - (time.monotonic() - stopped_at)))
            assert process.poll() is None, "the daemon died while the API was down"
            outage = time.monotonic() - stopped_at
        finally:
            up = lumina_stack.run("bash", str(UP), check=False, timeout=600)
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        log.wait_for(lambda line: "converged" in line, 300, "a converged cycle after the outage")
        assert process.poll() is None
    finally:
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=300)
        log.join()
    text = log.text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert lumina_stack.helm_revision() == before + 1
    lumina_stack.assert_no_pending_release()
    print(f"API server down for {outage:.0f}s; the daemon retried and converged")
    lumina_stack.count("faults survived")
