"""Image builds against the real Docker engine, from digest-exact build contexts."""

from __future__ import annotations

import asyncio
import io
import pathlib
import subprocess
import tarfile
import threading
import uuid

import pytest
from conftest import commit_all, git, write

from reconciler import services
from reconciler.building import builds, packing
from reconciler.inputs import contexts, git_reading, worktree_reading


def _plugin(name: str) -> services.ServicePlugin:
    return services.ServicePlugin(
        name=services.ServiceName("svc"),
        context="svc",
        dockerfile="svc/Dockerfile",
        image=f"lumina-test/{name}",
        values_key="svc",
        liveness=services.Probe("/", 1),
        readiness=services.Probe("/", 1),
    )


@pytest.fixture
def docker_client() -> object:
    return builds.connect({})


@pytest.fixture
def context_repo(tmp_path: pathlib.Path) -> pathlib.Path:

    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write(repo, "svc/Dockerfile", "FROM scratch\nCOPY . /app/\n")
    write(repo, "svc/.dockerignore", "secret.txt\n")
    write(repo, "svc/app.py", "print('v1')\n")
    write(repo, "svc/run.sh", "#!/bin/sh\n")
    (repo / "svc/run.sh").chmod(0o755)
    write(repo, "svc/secret.txt", "not for the image\n")
    (repo / "svc/link").symlink_to("app.py")
    commit_all(repo)
    return repo


def _files_in_image(reference: str) -> dict[str, tarfile.TarInfo]:
    container = subprocess.run(
        ["docker", "create", reference, "/nothing"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        exported = subprocess.run(
            ["docker", "export", container], check=True, capture_output=True
        ).stdout
    finally:
        subprocess.run(["docker", "rm", container], check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        return {member.name: member for member in archive.getmembers()}


def test_image_holds_exactly_the_planned_files(
    context_repo: pathlib.Path, docker_client: object
) -> None:
    plugin = _plugin(f"exact-{uuid.uuid4().hex[:8]}")
    source = worktree_reading.WorktreeSource(context_repo)
    inputs = contexts.service_inputs(plugin, source)
    lines: list[str] = []
    built = asyncio.run(
        builds.build(
            docker_client,
            plugin,
            inputs,
            source,
            log=lambda _s, line: lines.append(line),
            timeout=300,
        )
    )
    assert not built.reused and built.tag == inputs.tag
    assert any(line.startswith("Step 2/") and ": COPY . /app/" in line for line in lines), lines
    files = _files_in_image(built.reference)
    assert {"app/app.py", "app/run.sh", "app/Dockerfile", "app/.dockerignore", "app/link"} <= set(
        files
    )
    assert "app/secret.txt" not in files
    assert files["app/run.sh"].mode & 0o111
    assert files["app/link"].issym() and files["app/link"].linkname == "app.py"

    again = asyncio.run(
        builds.build(docker_client, plugin, inputs, source, log=lambda *_: None, timeout=300)
    )
    assert again.reused, "an image already present under its digest tag must not be rebuilt"
    subprocess.run(["docker", "rmi", built.reference], check=True, capture_output=True)


def test_commit_mode_builds_the_committed_content(
    context_repo: pathlib.Path, docker_client: object
) -> None:
    plugin = _plugin(f"commit-{uuid.uuid4().hex[:8]}")
    write(context_repo, "svc/app.py", "print('dirty, uncommitted')\n")
    source = git_reading.CommitSource(git_reading.open_repository(context_repo), "main")
    inputs = contexts.service_inputs(plugin, source)
    built = asyncio.run(
        builds.build(docker_client, plugin, inputs, source, log=lambda *_: None, timeout=300)
    )
    container = subprocess.run(
        ["docker", "create", built.reference, "/x"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        content = subprocess.run(
            ["docker", "cp", f"{container}:/app/app.py", "-"], check=True, capture_output=True
        ).stdout
    finally:
        subprocess.run(["docker", "rm", container], check=True, capture_output=True)
        subprocess.run(["docker", "rmi", built.reference], check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(content)) as archive:
        member = archive.extractfile("app.py")
        assert member is not None and member.read() == b"print('v1')\n"


def test_failed_build_names_the_step(context_repo: pathlib.Path, docker_client: object) -> None:
    write(
        context_repo, "svc/Dockerfile", "FROM scratch\nCOPY app.py /app/\nCOPY missing.txt /app/\n"
    )
    plugin = _plugin(f"broken-{uuid.uuid4().hex[:8]}")
    source = worktree_reading.WorktreeSource(context_repo)
    inputs = contexts.service_inputs(plugin, source)
    with pytest.raises(builds.BuildError) as caught:
        asyncio.run(
            builds.build(docker_client, plugin, inputs, source, log=lambda *_: None, timeout=300)
        )
    assert caught.value.step is not None
    assert caught.value.step.startswith("Step 3/") and caught.value.step.endswith(
        ": COPY missing.txt /app/"
    )
    assert "missing.txt" in str(caught.value)


def test_dockerfile_syntax_error_is_a_build_error(
    context_repo: pathlib.Path, docker_client: object
) -> None:
    write(context_repo, "svc/Dockerfile", "FROMM scratch\n")
    plugin = _plugin(f"syntax-{uuid.uuid4().hex[:8]}")
    source = worktree_reading.WorktreeSource(context_repo)
    inputs = contexts.service_inputs(plugin, source)
    with pytest.raises(builds.BuildError, match=r"FROMM|unknown instruction"):
        asyncio.run(
            builds.build(docker_client, plugin, inputs, source, log=lambda *_: None, timeout=300)
        )


def test_a_file_changed_after_planning_stops_the_pack(context_repo: pathlib.Path) -> None:
    plugin = _plugin("changed")
    source = worktree_reading.WorktreeSource(context_repo)
    inputs = contexts.service_inputs(plugin, source)
    write(context_repo, "svc/app.py", "print('changed meanwhile')\n")
    with pytest.raises(packing.ContextChangedError, match=r"svc/app\.py"):
        packing.pack(plugin, inputs, source)


def test_commit_mode_packs_from_several_threads_at_once(context_repo: pathlib.Path) -> None:
    """Builds pack contexts in parallel threads; gitpython's blob reader is shared."""

    for index in range(200):
        write(context_repo, f"svc/data/file{index}.txt", f"content {index}\n" * (index + 1))
    commit_all(context_repo)
    source = git_reading.CommitSource(git_reading.open_repository(context_repo), "main")
    plugin = _plugin("threads")
    inputs = contexts.service_inputs(plugin, source)
    outcomes: list[object] = []

    def pack_once() -> None:
        try:
            archive, _dockerfile = packing.pack(plugin, inputs, source)
            archive.close()
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(exc)

    # Daemon threads with a deadline: unserialised reads deadlock rather than fail.
    threads = [threading.Thread(target=pack_once, daemon=True) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes == ["ok"] * 4
