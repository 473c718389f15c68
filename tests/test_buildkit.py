"""Builds through BuildKit (the docker CLI) against the real Docker engine, and the
fallback to the engine's classic API when no CLI can drive BuildKit."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import git, write

from reconciler import services
from reconciler.building import buildkit, builds
from reconciler.inputs import contexts, worktree_reading

#: resolved before any test narrows PATH, for the checks the tests make themselves
DOCKER = shutil.which("docker") or "docker"
GIT = shutil.which("git") or "git"
PS = shutil.which("ps") or "ps"
#: the CLIs of this machine: Debian's 20.10 (BuildKit under DOCKER_BUILDKIT=1) and a
#: newer one that builds with BuildKit only through the buildx plugin
OLD_CLI = pathlib.Path("/usr/bin/docker")
NEW_CLI = pathlib.Path("/usr/local/bin/docker")
BASE = "python:3.13-slim"  # a local base image with a shell (tools/base-images)
#: what makes a Dockerfile build through BuildKit
MOUNT = "RUN --mount=type=cache,target=/var/cache/lumina-test true\n"


def _plugin(name: str) -> services.ServicePlugin:
    return services.ServicePlugin(
        name=services.ServiceName("svc"),
        context="svc",
        dockerfile="svc/Dockerfile",
        image=f"lumina-test/bk-{name}-{uuid.uuid4().hex[:8]}",
        values_key="svc",
        liveness=services.Probe("/", 1),
        readiness=services.Probe("/", 1),
        build_args={"GREETING": "hello"},
    )


def _docker(*args: str) -> str:
    return subprocess.run(
        [DOCKER, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _cat(reference: str, path: str) -> str:
    return _docker("run", "--rm", "--network", "none", reference, "cat", path)


def _only_on_path(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, *clis: str) -> None:
    """PATH holds the given docker CLIs (a directory each) and git, nothing else;
    DOCKER_CONFIG points at an empty directory, so no buildx plugin is found."""
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "git").symlink_to(GIT)
    directories = [str(tools)]
    for index, cli in enumerate(clis):
        directory = tmp_path / f"cli{index}"
        directory.mkdir()
        (directory / "docker").symlink_to(cli)
        directories.append(str(directory))
    monkeypatch.setenv("PATH", os.pathsep.join(directories))
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))


def _buildx_cli() -> str | None:
    """A docker CLI with the buildx plugin, as the machine has it."""
    for cli in (NEW_CLI, OLD_CLI):
        done = subprocess.run([cli, "buildx", "version"], capture_output=True, check=False)
        if cli.exists() and done.returncode == 0:
            return str(cli)
    return None


@pytest.fixture(params=["buildx", "DOCKER_BUILDKIT=1"])
def buildkit_client(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[object]:
    """A client whose builds go through BuildKit, by each of the two CLI routes."""
    if request.param == "buildx":
        cli = _buildx_cli()
        if cli is None:
            pytest.fail(
                "no docker CLI here has the buildx plugin: run bash tools/install-buildx.sh"
            )
        monkeypatch.setenv("PATH", os.pathsep.join([str(pathlib.Path(cli).parent), "/usr/bin"]))
    else:
        _only_on_path(tmp_path, monkeypatch, str(OLD_CLI))
    client = builds.connect({})
    chosen = builds.builder(client)
    assert isinstance(chosen, buildkit.Cli), chosen
    assert chosen.argv[1:] == (
        ("buildx", "build", "--load") if request.param == "buildx" else ("build",)
    )
    yield client


@pytest.fixture
def repo(tmp_path: pathlib.Path) -> pathlib.Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


def _build(
    client: object, plugin: services.ServicePlugin, repo: pathlib.Path
) -> tuple[builds.BuiltImage, list[str]]:
    source = worktree_reading.WorktreeSource(repo)
    inputs = contexts.service_inputs(plugin, source)
    lines: list[str] = []
    built = asyncio.run(
        builds.build(
            client,
            plugin,
            inputs,
            source,
            log=lambda service, line: lines.append(f"{service}: {line}"),
            timeout=300,
        )
    )
    assert built.tag == inputs.tag
    return built, lines


def _remove(*references: str) -> None:
    subprocess.run([DOCKER, "rmi", "-f", *references], capture_output=True, check=False)


def test_buildkit_image_carries_the_same_tag_and_labels(
    buildkit_client: object, repo: pathlib.Path
) -> None:
    write(
        repo,
        "svc/Dockerfile",
        f"FROM {BASE}\nARG GREETING\n"
        "RUN --mount=type=cache,target=/var/cache/x echo $GREETING > /greeting\n"
        "COPY app.py /app/\n",
    )
    write(repo, "svc/app.py", "print('v1')\n")
    plugin = _plugin("labels")
    built, lines = _build(buildkit_client, plugin, repo)
    try:
        assert not built.reused and built.reference == f"{plugin.image}:{built.tag}"
        inspected = json.loads(_docker("image", "inspect", built.reference))[0]
        source = worktree_reading.WorktreeSource(repo)
        digest = contexts.service_inputs(plugin, source).digest
        labels = inspected["Config"]["Labels"]
        assert (labels["io.lumina.service"], labels["io.lumina.digest"]) == ("svc", digest)
        assert f"{plugin.image}:{built.tag}" in inspected["RepoTags"]
        assert _cat(built.reference, "/greeting") == "hello"
        # BuildKit's plain progress, streamed line by line under the service's name
        assert any(line.startswith("svc: #") and "COPY app.py /app/" in line for line in lines)
    finally:
        _remove(built.reference)


def test_the_image_holds_exactly_the_planned_files(
    buildkit_client: object, repo: pathlib.Path
) -> None:
    write(repo, "svc/Dockerfile", f"FROM {BASE}\n{MOUNT}COPY . /app/\n")
    write(repo, "svc/.dockerignore", "secret.txt\n")
    write(repo, "svc/app.py", "v1\n")
    write(repo, "svc/run.sh", "#!/bin/sh\n")
    (repo / "svc/run.sh").chmod(0o755)
    write(repo, "svc/secret.txt", "not for the image\n")
    (repo / "svc/link").symlink_to("app.py")
    built, _ = _build(buildkit_client, _plugin("exact"), repo)
    try:
        listing = _docker(
            "run",
            "--rm",
            "--network",
            "none",
            built.reference,
            "find",
            "/app",
            "-mindepth",
            "1",
            "-printf",
            "%P %y %m>%l\\n",
        )
    finally:
        _remove(built.reference)
    assert sorted(listing.splitlines()) == [
        ".dockerignore f 644>",
        "Dockerfile f 644>",
        "app.py f 644>",
        "link l 777>app.py",
        "run.sh f 755>",
    ]


def test_without_cache_mounts_the_classic_api_builds_it(
    buildkit_client: object, repo: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A one-layer rebuild is quicker on the classic API, so a Dockerfile that wants
    nothing of BuildKit builds there, with no fallback to report."""
    write(repo, "svc/Dockerfile", "FROM scratch\nCOPY app.py /\n")
    write(repo, "svc/app.py", "v1\n")
    with caplog.at_level(logging.INFO, logger="lumina.building"):
        built, lines = _build(buildkit_client, _plugin("plain"), repo)
    _remove(built.reference)
    assert any(line.startswith("svc: Step 2/") for line in lines), lines
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_cli_builds_on_the_engine_the_client_names(
    buildkit_client: object, repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CLI context or DOCKER_HOST set after connecting would send the build elsewhere."""
    monkeypatch.setenv("DOCKER_CONTEXT", f"lumina-test-no-such-context-{uuid.uuid4().hex}")
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    write(repo, "svc/Dockerfile", f"FROM {BASE}\n{MOUNT}")
    built, _ = _build(buildkit_client, _plugin("engine"), repo)
    monkeypatch.delenv("DOCKER_CONTEXT")
    monkeypatch.delenv("DOCKER_HOST")
    assert _docker("image", "inspect", "-f", "{{.Id}}", built.reference)
    _remove(built.reference)


def test_an_edit_rebuilds_from_the_cache(buildkit_client: object, repo: pathlib.Path) -> None:
    """After an edit, the layers before it are reused and the cache mount keeps what the
    first build left in it."""
    cache = f"lumina-test-{uuid.uuid4().hex[:8]}"
    write(
        repo,
        "svc/Dockerfile",
        f"FROM {BASE}\nCOPY deps.txt /\n"
        "RUN cat /proc/sys/kernel/random/uuid > /deps-layer\n"
        "COPY app.py /\n"
        f"RUN --mount=type=cache,id={cache},target=/cache "
        "cat /app.py >> /cache/seen && cp /cache/seen /seen\n",
    )
    write(repo, "svc/deps.txt", "pinned\n")
    write(repo, "svc/app.py", "v1\n")
    plugin = _plugin("cache")
    first, _ = _build(buildkit_client, plugin, repo)
    write(repo, "svc/app.py", "v2\n")
    second, lines = _build(buildkit_client, plugin, repo)
    try:
        assert second.tag != first.tag
        assert _cat(second.reference, "/deps-layer") == _cat(first.reference, "/deps-layer")
        assert any(line.endswith(" CACHED") for line in lines), lines
        assert _cat(second.reference, "/seen").splitlines() == ["v1", "v2"]
        first_layers = json.loads(_docker("image", "inspect", first.reference))[0]["RootFS"]
        second_layers = json.loads(_docker("image", "inspect", second.reference))[0]["RootFS"]
        # base + COPY deps.txt + RUN: the same layers, not rebuilt copies of them
        assert first_layers["Layers"][:-2] == second_layers["Layers"][:-2]
        assert first_layers["Layers"][-2:] != second_layers["Layers"][-2:]
    finally:
        _remove(first.reference, second.reference)


def test_a_failed_step_names_the_service_and_the_step(
    buildkit_client: object, repo: pathlib.Path
) -> None:
    write(repo, "svc/Dockerfile", f"FROM {BASE}\n{MOUNT}COPY app.py /\nRUN echo broken && exit 3\n")
    write(repo, "svc/app.py", "v1\n")
    with pytest.raises(builds.BuildError) as caught:
        _build(buildkit_client, _plugin("failed"), repo)
    assert caught.value.service == "svc"
    assert caught.value.step is not None and caught.value.step.endswith(
        "4/4] RUN echo broken && exit 3"
    )
    assert str(caught.value).startswith("build of svc failed at ")
    assert "exit code: 3" in str(caught.value)
    assert any("broken" in line for line in caught.value.log_tail)


def test_a_missing_file_and_a_syntax_error_are_build_errors(
    buildkit_client: object, repo: pathlib.Path
) -> None:
    write(repo, "svc/Dockerfile", f"FROM {BASE}\n{MOUNT}COPY app.py /\nCOPY missing.txt /\n")
    write(repo, "svc/app.py", "v1\n")
    with pytest.raises(builds.BuildError, match=r"missing\.txt") as caught:
        _build(buildkit_client, _plugin("missing"), repo)
    assert caught.value.step is not None and caught.value.step.endswith("COPY missing.txt /")
    write(repo, "svc/Dockerfile", f"FROMM scratch\n{MOUNT}")
    with pytest.raises(builds.BuildError, match=r"FROMM|unknown instruction"):
        _build(buildkit_client, _plugin("syntax"), repo)


def test_the_timeout_ends_the_cli(buildkit_client: object, repo: pathlib.Path) -> None:
    marker = uuid.uuid4().hex
    write(repo, "svc/Dockerfile", f"FROM {BASE}\n{MOUNT}RUN sleep 120 && echo {marker}\n")
    plugin = _plugin("timeout")
    source = worktree_reading.WorktreeSource(repo)
    inputs = contexts.service_inputs(plugin, source)
    started = time.monotonic()
    with pytest.raises(builds.BuildError, match="timed out after 3s"):
        asyncio.run(
            builds.build(buildkit_client, plugin, inputs, source, log=lambda *_: None, timeout=3)
        )
    assert time.monotonic() - started < 20
    ps = subprocess.run([PS, "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert plugin.image not in ps, "the docker CLI outlived the build's timeout"


def _classic_is_taken(client: object, repo: pathlib.Path, caplog: pytest.LogCaptureFixture) -> str:
    """The build runs on the classic API, cache mounts dropped; returns the logged reason."""
    write(
        repo,
        "svc/Dockerfile",
        f"FROM {BASE}\nARG GREETING\n"
        "RUN --mount=type=cache,target=/root/.cache \\\n    echo $GREETING > /greeting\n",
    )
    plugin = _plugin("classic")
    with caplog.at_level(logging.INFO, logger="lumina.building"):
        built, lines = _build(client, plugin, repo)
    try:
        assert any(line.startswith("svc: Step 3/") and ": RUN" in line for line in lines), lines
        assert _cat(built.reference, "/greeting") == "hello"
        labels = json.loads(_docker("image", "inspect", built.reference))[0]["Config"]["Labels"]
        assert labels["io.lumina.service"] == "svc" and "io.lumina.digest" in labels
    finally:
        _remove(built.reference)
    [record] = [r for r in caplog.records if r.name == "lumina.building"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("building with the classic builder")
    return record.getMessage()


def test_a_cli_without_buildx_falls_back_to_the_classic_builder(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    repo: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    version = (
        subprocess.run([NEW_CLI, "--version"], capture_output=True, text=True, check=False).stdout
        if NEW_CLI.exists()
        else ""
    )
    if (buildkit._version(version) or (0, 0)) < (23, 0):
        pytest.fail(f"this test needs a docker CLI from 23.0 on at {NEW_CLI}")
    _only_on_path(tmp_path, monkeypatch, str(NEW_CLI))
    reason = _classic_is_taken(builds.connect({}), repo, caplog)
    assert "lack the buildx plugin" in reason


def test_no_cli_falls_back_to_the_classic_builder(
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    repo: pathlib.Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _only_on_path(tmp_path, monkeypatch)
    reason = _classic_is_taken(builds.connect({}), repo, caplog)
    assert "no docker CLI on PATH" in reason


def test_an_old_engine_has_no_buildkit() -> None:
    chosen = buildkit.find({}, engine_api="1.38", engine_os="linux")
    assert isinstance(chosen, buildkit.Unusable) and "API 1.38" in chosen.reason


def test_without_cache_mounts_drops_only_cache_mounts() -> None:
    dockerfile = (
        b"FROM base\n"
        b"RUN --mount=type=cache,id=npm,target=/root/.npm \\\n    npm ci\n"
        b"run --mount=target=/c,type=cache --mount=type=secret,id=token make\n"
        b"RUN --network=none --mount=type=cache,target=/x true\n"
        b"RUN echo --mount=type=cache,target=/y\n"
    )
    assert buildkit.without_cache_mounts(dockerfile) == (
        b"FROM base\n"
        b"RUN \\\n    npm ci\n"
        b"run --mount=type=secret,id=token make\n"
        b"RUN --network=none true\n"
        b"RUN echo --mount=type=cache,target=/y\n"
    )
