"""``lumina-reconcile verify`` on this module's environment: the seed's table, all green.

Also runs the README's plain ``kubectl`` equivalents the command prints for the in-pod
health rows (the images have no curl: python, or node for the frontend), and checks that
verify fails, row by row, for a namespace where nothing runs.
"""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys
from typing import Any

import environments
from conftest import GIT_ENV, kubectl, run, wait_for

ENVIRONMENT = environments.for_module(__file__)

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


def _verify(
    repo: pathlib.Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "verify", *args, "--repo", str(repo)],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV, **(env or {})},
        timeout=300,
        check=False,
    )


def _verified(repo: pathlib.Path) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def passes() -> bool:
        done = _verify(repo, "--json")
        try:
            found.update(json.loads(done.stdout))
        except ValueError:
            raise AssertionError(
                f"verify printed no JSON ({done.returncode}): {done.stderr}"
            ) from None
        return done.returncode == 0

    # The install may still be finishing a rollout: wait, bounded.
    try:
        wait_for(passes, 240, "lumina-reconcile verify to pass")
    except AssertionError:
        failing = [c for c in found.get("checks", []) if not c["passed"]]
        raise AssertionError(f"verify failed: {json.dumps(failing, indent=2)}") from None
    return found


def test_verify_passes_every_row_of_the_seed_table(workspace: pathlib.Path) -> None:
    document = _verified(workspace)
    assert document["passed"] is True and document["namespace"] == ENVIRONMENT.namespace
    assert document["app_url"] == ENVIRONMENT.url
    # Every row of the seed's table, once (the services' rows follow the plugins' order).
    assert sorted(check["name"] for check in document["checks"]) == sorted(ROWS)
    assert all(check["passed"] for check in document["checks"])
    by_name = {check["name"]: check for check in document["checks"]}
    assert (
        f"frontend NodePort 3000->{ENVIRONMENT.node_port}" in by_name["services present"]["detail"]
    )
    assert "backend-data Bound" in by_name["PVC bound"]["detail"]
    assert by_name["backend health (in its pod)"]["detail"].endswith("/api/health HTTP 200")
    assert by_name["chatbot health (in its pod)"]["detail"].endswith("/health HTTP 200")


def test_verify_prints_the_table_and_exits_zero(workspace: pathlib.Path) -> None:
    _verified(workspace)
    done = _verify(workspace)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all checks pass" in done.stdout
    for row in ("pods running", "PVC bound", "secrets present"):
        assert row in done.stdout


def test_the_printed_kubectl_equivalents_work_with_these_images(
    helm_env: dict[str, str], workspace: pathlib.Path
) -> None:
    document = _verified(workspace)
    for check in document["checks"]:
        if not check["name"].endswith("(in its pod)"):
            continue
        argv = shlex.split(check["by_hand"])
        assert argv[0] == "kubectl" and "curl" not in argv, argv
        out = run(*kubectl(helm_env), *argv[1:]).stdout
        assert out.strip().splitlines()[-1] == "200", (check["name"], out)


def test_verify_fails_row_by_row_where_nothing_runs(workspace: pathlib.Path) -> None:
    done = _verify(workspace, "--json", env={"LUMINA_NAMESPACE": "lumina-verify-nothing-here"})
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(done.stdout)
    failed = {check["name"] for check in document["checks"] if not check["passed"]}
    assert {"pods running", "services present", "PVC bound", "secrets present"} <= failed
    assert {"backend health (in its pod)", "chatbot health (in its pod)"} <= failed
