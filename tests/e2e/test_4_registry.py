"""Images through a real registry on 127.0.0.1, pulled by the real cluster.

Clones of this repository deploy with ``LUMINA_REGISTRY`` set to a registry started for
this module (Debian's ``docker-registry``): images are pushed, never loaded into the
node, and the node's containerd pulls them. The registry is asked which digests it
holds, so an edit pushes one image and a second clone of the same commit builds and
pushes nothing. The release is this module's own environment, installed from nothing
(with images loaded into the node) by the ``workspace`` fixture.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import environments
import httpx
import pytest
from conftest import (
    GIT_ENV,
    commit,
    helm_revision,
    helm_status,
    pod_uids,
    reconcile,
    run,
    wait_for,
)

from reconciler.building import builds
from reconciler.cluster import kube

SERVICES = ("backend", "chatbot", "frontend")
BACKEND_MAIN = "services/backend/app/main.py"
ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace


def _once(repo: pathlib.Path, registry: str | None) -> tuple[int, str]:
    env = {key: value for key, value in os.environ.items() if key != "LUMINA_REGISTRY"}
    if registry:
        env["LUMINA_REGISTRY"] = registry
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "once", "--mode", "commit", "--repo", str(repo)],
        cwd=repo,
        env={**env, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=1200,
    )
    return result.returncode, result.stdout + result.stderr


def _last_cycle(repo: pathlib.Path) -> dict[str, Any]:
    status = json.loads(reconcile(repo, "status", "--json").stdout)
    cycle: dict[str, Any] = status["last_cycle"]
    return cycle


def _deployed_tags(repo: pathlib.Path) -> dict[str, str]:
    status = json.loads(reconcile(repo, "status", "--json").stdout)
    return {name: service["tag"] for name, service in status["services"].items()}


def _clone(
    destination: pathlib.Path, workspace: pathlib.Path, source: pathlib.Path | None = None
) -> pathlib.Path:
    """A clone of this module's environment (of ``source``'s checked-out commit, else of
    the checkout's HEAD), with the environment's secrets."""
    if source is None:
        return environments.clone(ENVIRONMENT, destination, secrets_from=workspace)
    run("git", "clone", "-q", str(source), str(destination))
    run("git", "checkout", "-q", "-B", "main", cwd=destination)
    shutil.copyfile(workspace / "config" / "secrets.env", destination / "config" / "secrets.env")
    return destination


def _container(cluster: kube.Kube, service: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Deployment's container spec and its one running pod's container status."""
    deployment = cluster.get("apps/v1", "Deployment", NAMESPACE, service)
    assert deployment is not None
    spec = deployment["spec"]["template"]["spec"]["containers"][0]
    pods = [
        pod
        for pod in cluster.list(
            "v1", "Pod", NAMESPACE, label_selector=f"app.kubernetes.io/name={service}"
        )
        if not pod["metadata"].get("deletionTimestamp")
    ]
    assert len(pods) == 1, [pod["metadata"]["name"] for pod in pods]
    return spec, pods[0]["status"]["containerStatuses"][0]


def _assert_pods_run_what_the_registry_holds(
    cluster: kube.Kube, prefix: str, tags: dict[str, str]
) -> None:
    docker = builds.connect({})
    for service in SERVICES:
        spec, status = _container(cluster, service)
        reference = f"{prefix}/{service}:{tags[service]}"
        assert spec["image"] == reference
        assert spec["imagePullPolicy"] == "IfNotPresent"
        pushed = docker.api.inspect_distribution(reference)["Descriptor"]["digest"]
        # The runtime names the manifest it pulled: the one the registry holds. (Under
        # which repository it says depends on where it met that manifest first.)
        assert status["imageID"].startswith("127.0.0.1:"), status
        assert status["imageID"].endswith(f"@{pushed}"), status


@pytest.fixture(scope="module")
def registry(registry_servers: Callable[..., Any]) -> Any:
    return registry_servers()


@pytest.fixture(scope="module")
def clones(
    workspace: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[pathlib.Path]:
    """A directory for this module's clones (the environment is deleted afterwards)."""
    yield tmp_path_factory.mktemp("registry-clones")


@pytest.fixture(scope="module")
def first(
    clones: pathlib.Path, registry: Any, cluster: kube.Kube, workspace: pathlib.Path
) -> tuple[pathlib.Path, str]:
    """A clone of the project deploys through the registry: each image the registry
    lacks is pushed (all three into this fresh one), none is loaded into the node."""
    clone = _clone(clones / "first", workspace)
    prefix = f"{registry.address}/lumina"
    code, output = _once(clone, prefix)
    assert code == 0, output
    cycle = _last_cycle(clone)
    assert cycle["outcome"] == "converged", cycle
    assert sorted(cycle["pushed"] + cycle["in_registry"]) == list(SERVICES), cycle
    assert cycle["pushed"] == list(SERVICES), "a fresh registry has none of them"
    assert "load" not in cycle["phases"], "pushed images are pulled, never loaded"
    print(f"\nfirst clone: built {cycle['built']}, pushed {cycle['pushed']}")
    _assert_pods_run_what_the_registry_holds(cluster, prefix, _deployed_tags(clone))
    return clone, prefix


def test_a_push_failure_leaves_the_release_untouched(
    clones: pathlib.Path,
    registry_servers: Callable[..., Any],
    helm_env: dict[str, str],
    workspace: pathlib.Path,
) -> None:
    clone = _clone(clones / "refused", workspace)
    before = helm_revision(helm_env, NAMESPACE)
    refusing = registry_servers(read_only=True)  # answers questions, refuses pushes
    code, output = _once(clone, f"{refusing.address}/lumina")
    assert code == 1, output
    assert "push-failed: push of " in output, output
    assert refusing.pushes() == []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, output = _once(clone, f"127.0.0.1:{closed}/lumina")
    assert code == 1, output
    assert "push-failed: cannot ask the registry" in output, output
    assert helm_revision(helm_env, NAMESPACE) == before
    assert helm_status(helm_env, NAMESPACE) == "deployed"


def test_an_edit_builds_and_pushes_only_that_service(
    first: tuple[pathlib.Path, str],
    registry: Any,
    cluster: kube.Kube,
    helm_env: dict[str, str],
    user: httpx.Client,
) -> None:
    clone, prefix = first
    before = helm_revision(helm_env, NAMESPACE)
    others = {service: pod_uids(cluster, service, NAMESPACE) for service in ("frontend", "chatbot")}
    stored_before = registry.pushes()
    path = clone / BACKEND_MAIN
    # A change no earlier run made, so the image is really built (not found and reused).
    path.write_text(path.read_text() + f"\n# e2e: a registry-delivered change {uuid.uuid4()}\n")
    commit(clone, "backend: a change delivered through the registry")

    code, output = _once(clone, prefix)
    assert code == 0, output
    cycle = _last_cycle(clone)
    print(f"\nbackend edit: built {cycle['built']}, pushed {cycle['pushed']}")
    assert cycle["outcome"] == "converged", cycle
    assert cycle["built"] == ["backend"] and cycle["pushed"] == ["backend"], cycle
    tag = _deployed_tags(clone)["backend"]
    assert registry.pushes()[len(stored_before) :] == [f"lumina/backend:{tag}"]
    assert helm_revision(helm_env, NAMESPACE) == before + 1
    assert {service: pod_uids(cluster, service, NAMESPACE) for service in others} == others
    spec, status = _container(cluster, "backend")
    assert spec["image"] == f"{prefix}/backend:{tag}"
    assert status["imageID"].startswith(f"{prefix}/backend@sha256:"), status
    wait_for(lambda: user.get("/api/todos").status_code == 200, 120, "the new backend serving")


def test_a_second_clone_builds_and_pushes_nothing(
    first: tuple[pathlib.Path, str],
    clones: pathlib.Path,
    registry: Any,
    cluster: kube.Kube,
    helm_env: dict[str, str],
    user: httpx.Client,
    workspace: pathlib.Path,
) -> None:
    """Another clone of the same commit, on a machine state that cannot help: the release
    runs the checkout's local images again and the registry-named images are gone from
    the engine. Only the registry knows the digests — and it is asked."""
    clone, prefix = first
    tags = _deployed_tags(clone)
    reconcile(workspace, "once", "--mode", "commit")
    spec, _status = _container(cluster, "backend")
    assert not spec["image"].startswith(prefix)
    for service in SERVICES:
        run("docker", "rmi", f"{prefix}/{service}:{tags[service]}", check=False)
    stored_before = registry.pushes()
    revision = helm_revision(helm_env, NAMESPACE)

    second = _clone(clones / "second", workspace, source=clone)
    code, output = _once(second, prefix)
    assert code == 0, output
    cycle = _last_cycle(second)
    print(
        f"\nsecond clone: built {len(cycle['built'])}, pushed {len(cycle['pushed'])}, "
        f"already in the registry {len(cycle['in_registry'])} ({cycle['in_registry']})"
    )
    assert cycle["outcome"] == "converged", cycle
    assert cycle["built"] == [] and cycle["pushed"] == [], cycle
    assert cycle["in_registry"] == list(SERVICES), cycle
    assert registry.pushes() == stored_before
    assert helm_revision(helm_env, NAMESPACE) == revision + 1
    _assert_pods_run_what_the_registry_holds(cluster, prefix, tags)
    wait_for(lambda: user.get("/api/todos").status_code == 200, 120, "the backend serving")
    # And a cycle later there is nothing left to do: no build, no push, no upgrade.
    code, output = _once(second, prefix)
    assert code == 0 and "nothing-to-do:" in output, output
