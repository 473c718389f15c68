"""``lumina-reconcile verify`` on the bootstrapped stack: the seed's table, all green.

Also runs the README's plain ``kubectl`` equivalents the command prints for the in-pod
health rows (the images have no curl: python, or node for the frontend), and checks that
verify fails, row by row, for a namespace where nothing runs.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from typing import Any

from conftest import FRONTEND, GIT_ENV, ROOT, kubectl, run, wait_for

ROWS = [
    "pods running",
    "services present",
    "app answers on its NodePort",
    "frontend health (in its pod)",
    "backend health (in its pod)",
    "chatbot health (in its pod)",
    "PVC bound",
    "secrets present",
]


def _verify(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "verify", *args, "--repo", str(ROOT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, **(env or {})},
        timeout=300,
        check=False,
    )


def _verified() -> dict[str, Any]:
    found: dict[str, Any] = {}

    def passes() -> bool:
        done = _verify("--json")
        try:
            found.update(json.loads(done.stdout))
        except ValueError:
            raise AssertionError(
                f"verify printed no JSON ({done.returncode}): {done.stderr}"
            ) from None
        return done.returncode == 0

    # Earlier e2e modules may have left a rollout finishing: wait, bounded.
    try:
        wait_for(passes, 240, "lumina-reconcile verify to pass")
    except AssertionError:
        failing = [c for c in found.get("checks", []) if not c["passed"]]
        raise AssertionError(f"verify failed: {json.dumps(failing, indent=2)}") from None
    return found


def test_verify_passes_every_row_of_the_seed_table() -> None:
    document = _verified()
    assert document["passed"] is True and document["namespace"] == "lumina"
    assert document["app_url"] == FRONTEND
    # Every row of the seed's table, once (the services' rows follow the plugins' order).
    assert sorted(check["name"] for check in document["checks"]) == sorted(ROWS)
    assert all(check["passed"] for check in document["checks"])
    by_name = {check["name"]: check for check in document["checks"]}
    assert "frontend NodePort 3000->30080" in by_name["services present"]["detail"]
    assert "backend-data Bound" in by_name["PVC bound"]["detail"]
    assert by_name["backend health (in its pod)"]["detail"].endswith("/api/health HTTP 200")
    assert by_name["chatbot health (in its pod)"]["detail"].endswith("/health HTTP 200")


def test_verify_prints_the_table_and_exits_zero() -> None:
    _verified()
    done = _verify()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks pass" in done.stdout
    for row in ("pods running", "PVC bound", "secrets present"):
        assert row in done.stdout


def test_the_printed_kubectl_equivalents_work_with_these_images(
    helm_env: dict[str, str],
) -> None:
    document = _verified()
    for check in document["checks"]:
        if not check["name"].endswith("(in its pod)"):
            continue
        argv = shlex.split(check["by_hand"])
        assert argv[0] == "kubectl" and "curl" not in argv, argv
        out = run(*kubectl(helm_env), *argv[1:]).stdout
        assert out.strip().splitlines()[-1] == "200", (check["name"], out)


def test_verify_fails_row_by_row_where_nothing_runs() -> None:
    done = _verify("--json", env={"LUMINA_NAMESPACE": "lumina-verify-nothing-here"})
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(done.stdout)
    failed = {check["name"] for check in document["checks"] if not check["passed"]}
    assert {"pods running", "services present", "PVC bound", "secrets present"} <= failed
    assert {"backend health (in its pod)", "chatbot health (in its pod)"} <= failed
