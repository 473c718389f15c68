"""The daemon's status endpoint is for this machine only and shows no secret.

A daemon runs on a clone whose git-ignored secrets file holds a recognisable value for
every declared secret key (the values the cluster already has for ``JWT_SECRET_KEY``,
plus a test ``SMTP_PASSWORD`` and ``OPENAI_API_KEY``, which the daemon never deploys
here: the clone adopts the release first, so the daemon's first cycle changes nothing).
``/status`` and ``/metrics`` are read and scanned, the listening socket is checked
with ``ss``, and SIGTERM ends the daemon with exit code 0.
"""

from __future__ import annotations

import pathlib
import re
import secrets
import shutil
import signal

import httpx
import lumina_stack


def _listeners(port: int) -> list[str]:
    ss = shutil.which("ss")
    assert ss, "ss is missing (Debian package iproute2)"
    out = lumina_stack.run(ss, "-Hltn", f"sport = :{port}").stdout
    return [line.split()[3] for line in out.splitlines() if line.strip()]


def test_status_endpoint_is_loopback_only_and_secret_free(workspace: pathlib.Path) -> None:
    # Adopt the release first with the real secrets, so the daemon's own first cycle
    # finds nothing to deploy and never applies the test values below.
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    jwt_value = lumina_stack.deployed_secret("backend-secrets", "JWT_SECRET_KEY")
    smtp_value = "smtp-lumina-test-" + secrets.token_hex(16)
    openai_value = "sk-lumina-test-" + secrets.token_hex(16)
    (workspace / "config" / "secrets.env").write_text(
        f"JWT_SECRET_KEY={jwt_value}\nSMTP_PASSWORD={smtp_value}\nOPENAI_API_KEY={openai_value}\n"
    )
    port = lumina_stack.free_port()
    process = lumina_stack.daemon(workspace, env={"LUMINA_STATUS_PORT": str(port)})
    log = lumina_stack.LogTail(process)
    try:
        log.wait_for(lambda line: "status on http://127.0.0.1" in line, 60, "'status on'")
        log.wait_for(lambda line: re.search(r"cycle 1: ", line) is not None, 300, "'cycle 1'")
        base = f"http://127.0.0.1:{port}"
        status = httpx.get(f"{base}/status", timeout=10)
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        health = httpx.get(f"{base}/healthz", timeout=10)
        assert status.status_code == metrics.status_code == health.status_code == 200
        assert status.json()["daemon"]["pid"] == process.pid
        assert "lumina" in metrics.text
        assert httpx.post(f"{base}/status", timeout=10).status_code == 405

        listening = _listeners(port)
        assert listening == [f"127.0.0.1:{port}"], listening
        # Nothing answers on the machine's other addresses.
        lumina_stack.count("attacks tried")
        other = [
            address
            for address in lumina_stack.run("hostname", "-I").stdout.split()
            if ":" not in address
        ]
        for address in other:
            try:
                httpx.get(f"http://{address}:{port}/status", timeout=3)
            except httpx.ConnectError:
                continue
            raise AssertionError(f"the status endpoint answered on {address}")
        lumina_stack.count("attacks denied")
    finally:
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=120)
        log.join()
    places = [("/status", status.text), ("/metrics", metrics.text), ("daemon log", log.text())]
    leaks = lumina_stack.scan(places, (jwt_value, smtp_value, openai_value))
    lumina_stack.count("attacks tried", len(places))
    lumina_stack.count("attacks denied", len(places) - len(leaks))
    assert not leaks, leaks
    assert code == 0, log.text()[-3000:]
    assert "stopped after" in log.text()
