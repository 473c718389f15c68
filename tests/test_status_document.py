"""One status document: ``lumina-reconcile status --json`` and the daemon's ``/status``.

Both are read for the same state directory — a saved state with history, and the app
URL the provider gave when the cluster came up — through the real command (in a
subprocess) and the daemon's real WSGI app, called directly. They must have the same
keys, the same values where neither is live, and the provider's app URL, never one
made from the node's address.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
from typing import Any
from wsgiref import util as wsgi_util

import fakes

from reconciler import discovery, settings
from reconciler.cluster import app_urls, providers
from reconciler.cycle import outcomes, state
from reconciler.daemon import running, serving

NODE_IP = "192.0.2.2"
PROVIDER_URL = "http://127.0.0.1:30080"
#: what the daemon alone knows: its process, its drift watch, the Deployments it reads
LIVE_FIELDS = ("daemon", "drift", "services")


def _saved(config: settings.Settings, info: providers.ClusterInfo) -> None:
    state_dir = config.repo_path(config.state_dir)
    converged = outcomes.CycleResult(
        outcomes.Outcome.CONVERGED,
        "revision 3: backend=3f9a2c1d0e4b",
        built=("backend",),
        revision=3,
        finished_at=1_700_000_000.0,
    )
    state.save(
        state_dir,
        state.State(
            services={
                "backend": state.DeployedImage(
                    digest="sha256:" + "3f" * 32, tag="3f9a2c1d0e4b", image="lumina/backend"
                )
            },
            revision=3,
            history=[converged.to_json()],
        ),
    )
    app_urls.record(state_dir, "local", info)


def _from_the_command(project: pathlib.Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--json", "--repo", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _from_the_daemon(config: settings.Settings, info: providers.ClusterInfo) -> dict[str, Any]:
    box = fakes.toolbox(config, discovery.discover_services(config.repo).plugins).box
    daemon = running.Daemon(box)
    server = serving.StatusServer(0, daemon.status, box.metrics)
    server.start()
    answered: list[str] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/status"}
    wsgi_util.setup_testing_defaults(environ)
    try:
        body = b"".join(server._app(environ, lambda status, headers: answered.append(status)))
    finally:
        server.stop()
        daemon.notifier.stop()
    assert answered == ["200 OK"]
    document: dict[str, Any] = json.loads(body)
    return document


def _shape(value: Any) -> Any:
    """The keys at every level of a document, without its values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return None


def _both(
    project: pathlib.Path, info: providers.ClusterInfo
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The command's document and the daemon's, for one state directory."""
    config = settings.load_settings(project)
    _saved(config, info)
    return _from_the_command(project), _from_the_daemon(config, info)


def test_status_json_and_the_daemons_status_are_one_document(project: pathlib.Path) -> None:
    info = providers.ClusterInfo(
        pathlib.Path("/nonexistent/kubeconfig"), "lumina", NODE_IP, app_url=PROVIDER_URL
    )
    command, daemon = _both(project, info)
    assert _shape(command) == _shape(daemon)
    assert {key: command[key] for key in command if key not in LIVE_FIELDS} == {
        key: daemon[key] for key in daemon if key not in LIVE_FIELDS
    }
    assert command["app_url"] == daemon["app_url"] == PROVIDER_URL
    assert command["cluster"]["node_ip"] == NODE_IP  # known, and still not the app's URL
    assert command["revision"] == daemon["revision"] == 3
    assert command["last_cycle"]["outcome"] == "converged"
    # The live fields: the daemon says who it is and what it found; the command cannot.
    assert daemon["daemon"]["pid"] == os.getpid() and daemon["daemon"]["started_at"]
    assert command["daemon"]["pid"] is None and command["daemon"]["started_at"] is None
    assert daemon["drift"] == [] and command["drift"] is None
    assert daemon["services"]["backend"]["rollout"] == "absent"  # read from the cluster
    assert command["services"]["backend"]["rollout"] == "ready"  # what its last cycle said
    for key in ("tag", "digest", "image", "deployed_at"):
        assert command["services"]["backend"][key] == daemon["services"]["backend"][key]


def test_without_a_url_from_the_provider_neither_shows_the_nodes_address(
    project: pathlib.Path,
) -> None:
    """The node's address is often unreachable from here (kind without a port mapping,
    minikube's docker driver): only the provider may name the app's URL."""
    note = "no NodePort is reachable from here: " + providers.PORT_FORWARD
    info = providers.ClusterInfo(
        pathlib.Path("/nonexistent/kubeconfig"), "lumina", NODE_IP, app_url_note=note
    )
    command, daemon = _both(project, info)
    assert command["app_url"] == daemon["app_url"] == ""
    assert command["cluster"] == daemon["cluster"]
    assert daemon["cluster"]["app_url_note"] == note
    assert NODE_IP not in json.dumps({key: daemon[key] for key in daemon if key != "cluster"})
