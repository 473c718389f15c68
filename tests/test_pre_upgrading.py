"""Pre-upgrade hooks: which upgrades restart a service, and the policy around its hook.

The cluster is the one edge replaced here: a stand-in serving pod objects shaped as the
API serves them and recording the commands it is asked to run. Everything else — the
policy, the backend plugin's real hook, the command binding — runs as in a cycle.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from typing import Any

import pytest

from plugins import backend
from reconciler import errors, services
from reconciler.cli import db_commands
from reconciler.cluster import kube, pod_commands
from reconciler.releasing import pre_upgrading


def _deployment(name: str, image: str, checksum: str = "c1") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "template": {
                "metadata": {"annotations": {"checksum/config": checksum}},
                "spec": {"containers": [{"name": name, "image": image}]},
            }
        },
    }


def _pod(name: str, state: dict[str, Any], *, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/name": "backend"}}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-28T12:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"containers": [{"name": "backend", "image": "lumina/backend:old"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "backend", "ready": True, "state": state}],
        },
    }


RUNNING = {"running": {"startedAt": "2026-11-28T11:00:00Z"}}
CRASHING = {"waiting": {"reason": "CrashLoopBackOff"}}


@dataclasses.dataclass
class Cluster:
    """Pods to list, and what running a command answers."""

    pods: list[dict[str, Any]]
    answer: kube.ExecResult = dataclasses.field(
        default_factory=lambda: kube.ExecResult(0, "{}", "")
    )
    ran: list[tuple[str, str, tuple[str, ...]]] = dataclasses.field(default_factory=list)

    def list(self, api_version: str, kind: str, namespace: str | None, **_: str) -> list[Any]:
        assert (api_version, kind) == ("v1", "Pod")
        return self.pods

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float
    ) -> kube.ExecResult:
        self.ran.append((pod, container, tuple(argv)))
        return self.answer


VALUES = {"backend": {"image": {"repository": "lumina/backend", "tag": "3f9a2c1d0e4b5a69"}}}


def _prepare(
    cluster: Cluster, restarting: set[str], revision: int | None = 12
) -> pre_upgrading.Prepared:
    return pre_upgrading.run(
        cluster,  # type: ignore[arg-type]
        [backend.plugin],
        "lumina",
        restarting=restarting,
        revision=revision,
        values=VALUES,
    )


def _run(cluster: Cluster, restarting: set[str], revision: int | None = 12) -> list[str]:
    return list(_prepare(cluster, restarting, revision).notes)


def test_a_new_image_or_config_restarts_and_nothing_else_does() -> None:
    deployed = [_deployment("backend", "b:1"), _deployment("frontend", "f:1")]
    assert pre_upgrading.restarting(deployed, deployed) == set()
    assert pre_upgrading.restarting(
        [_deployment("backend", "b:2"), _deployment("frontend", "f:1")], deployed
    ) == {"backend"}
    assert pre_upgrading.restarting(
        [_deployment("backend", "b:1", checksum="c2"), _deployment("frontend", "f:1")], deployed
    ) == {"backend"}
    # A first install creates every Deployment; other kinds never restart pods.
    service = {"kind": "Service", "metadata": {"name": "backend"}, "spec": {"type": "NodePort"}}
    assert pre_upgrading.restarting([*deployed, service], []) == {"backend", "frontend"}


def test_the_backend_is_backed_up_in_its_running_pod_and_the_file_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    made = {"path": "/data/backups/lumina-20261128T120000.000Z-rev12-before-3f9a2c1d0e4b.db"}
    cluster = Cluster(
        [_pod("backend-old", CRASHING, deleting=True), _pod("backend-abc", RUNNING)],
        kube.ExecResult(0, json.dumps({**made, "size": 8192}), ""),
    )
    with caplog.at_level(logging.INFO, logger="lumina.pre_upgrade"):
        prepared = _prepare(cluster, {"backend"})
    said = list(prepared.notes)
    # The trial start and a restore after a failed migration find the same file.
    assert prepared.backups == {"backend": made["path"]}
    assert prepared.serving == {"backend": "backend-abc"}
    [(pod, container, argv)] = cluster.ran
    assert (pod, container) == ("backend-abc", "backend")
    assert argv[:5] == ("python", "-m", "app.backup", "--json", "create")
    assert argv[argv.index("--label") + 1] == "rev12-before-3f9a2c1d0e4b"
    assert said == [f"backend: backed up the database to {made['path']} (8192 bytes, integrity ok)"]
    assert made["path"] in caplog.text


def test_an_upgrade_that_does_not_restart_the_backend_runs_nothing() -> None:
    cluster = Cluster([_pod("backend-abc", RUNNING)])
    assert _run(cluster, {"frontend"}) == []
    assert cluster.ran == []


@pytest.mark.parametrize("pods", [[], [_pod("backend-abc", CRASHING)]], ids=["none", "crashing"])
def test_without_a_running_pod_the_upgrade_goes_ahead_and_says_so(
    pods: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    cluster = Cluster(pods)
    with caplog.at_level(logging.INFO, logger="lumina.pre_upgrade"):
        assert _run(cluster, {"backend"}, revision=None) == []
    assert cluster.ran == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "lumina.pre_upgrade"]
    assert "no running backend pod in lumina" in line


def test_a_failed_backup_refuses_the_upgrade_naming_pod_and_problem() -> None:
    cluster = Cluster(
        [_pod("backend-abc", RUNNING)],
        kube.ExecResult(1, "", "error: writing the backup failed: No space left on device"),
    )
    with pytest.raises(pre_upgrading.PreUpgradeRefusedError) as refused:
        _run(cluster, {"backend"})
    assert isinstance(refused.value, errors.PermanentError)
    message = str(refused.value)
    assert "backend" in message and "pod backend-abc" in message
    assert "exited 1" in message and "No space left on device" in message
    assert "running release is untouched" in message


def test_a_command_that_never_finishes_is_a_failure_too() -> None:
    cluster = Cluster(
        [_pod("backend-abc", RUNNING)], kube.ExecResult(None, "", "", "still running after 300s")
    )
    with pytest.raises(pre_upgrading.PreUpgradeRefusedError, match="did not finish: still running"):
        _run(cluster, {"backend"})


def test_an_unreachable_api_is_retried_not_refused() -> None:
    class Blinking(Cluster):
        def exec(self, *args: Any, **kwargs: Any) -> kube.ExecResult:
            raise kube.ApiUnavailableError("the API server is unreachable", retry_after=5)

    with pytest.raises(kube.ApiUnavailableError):
        _run(Blinking([_pod("backend-abc", RUNNING)]), {"backend"})


def test_pod_commands_fail_clearly_without_a_running_pod() -> None:
    with pytest.raises(pod_commands.NoRunningPodError, match="no running backend pod"):
        pod_commands.run_in_service(
            Cluster([]),  # type: ignore[arg-type]
            "lumina",
            "backend",
            ["true"],
            timeout=5,
        )


def test_db_commands_pick_the_one_service_that_owns_a_database() -> None:
    plain = dataclasses.replace(
        backend.plugin, name=services.ServiceName("frontend"), database=None
    )
    plugin, commands = db_commands._owner((plain, backend.plugin), None)
    assert plugin is backend.plugin
    assert commands.restore[-1] == "restore"
    with pytest.raises(errors.PermanentError, match="named 'frontend'"):
        db_commands._owner((plain, backend.plugin), "frontend")


def test_an_image_from_before_backups_is_upgraded_with_a_warning_line() -> None:
    missing = "/opt/venv/bin/python: No module named app.backup\n"
    cluster = Cluster([_pod("backend-abc", RUNNING)], kube.ExecResult(1, "", missing))
    [said] = _run(cluster, {"backend"})
    assert "not backed up" in said and "predates app.backup" in said
