"""The Docker engine is stopped while a change waits to be built.

``dockerd`` (started by ``tools/ensure-docker.sh``, its PID in ``/run/docker.pid``) is
stopped while the daemon runs on a clone with a committed backend change; the cluster's
own containerd is not touched, so the running release keeps serving. The daemon must
say it will retry, stay alive, leave the release alone, and deploy the change once
``ensure-docker.sh`` has the engine back.

Exclusive: the Docker engine every environment's builds use is stopped.
"""

from __future__ import annotations

import pathlib
import signal
import time

import httpx
import lumina_stack
import pytest

DOCKER_PID = pathlib.Path("/run/docker.pid")
ENSURE_DOCKER = lumina_stack.ROOT / "tools/ensure-docker.sh"


pytestmark = pytest.mark.exclusive


@pytest.mark.slow
def test_daemon_retries_while_the_docker_engine_is_down_and_converges(
    workspace: pathlib.Path,
) -> None:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    before = lumina_stack.helm_revision()
    lumina_stack.change_backend(workspace, "built after the engine is back")
    lumina_stack.count("faults injected")
    lumina_stack.stop_process(DOCKER_PID, "dockerd", 60)
    process = lumina_stack.daemon(workspace)
    log = lumina_stack.LogTail(process)
    try:
        log.wait_for(
            lambda line: "Docker engine does not answer" in line and "retry" in line,
            180,
            "a retry line naming the Docker engine",
        )
        time.sleep(20)
        assert process.poll() is None, "the daemon died while the engine was down"
        assert lumina_stack.helm_revision() == before, "nothing may be deployed meanwhile"
        # The release keeps serving through the frontend while the engine is away.
        assert httpx.get(f"{lumina_stack.current().url}/api/health", timeout=10).status_code == 200
    finally:
        restarted = lumina_stack.run("bash", str(ENSURE_DOCKER), check=False, timeout=300)
    assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-2000:]
    try:
        log.wait_for(lambda line: "converged" in line, 600, "a converged cycle")
    finally:
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=300)
        log.join()
    text = log.text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    assert lumina_stack.helm_revision() == before + 1
    assert lumina_stack.last_cycle(workspace)["built"] == ["backend"]
    lumina_stack.assert_no_pending_release()
    lumina_stack.count("faults survived")
