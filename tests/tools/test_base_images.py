"""The Docker engine and the base images the service Dockerfiles name.

Runs the real tools: ``tools/ensure-docker.sh`` and ``tools/base-images/build.sh``
(a first run on a fresh machine debootstraps Debian and takes a few minutes).
Where a registry answers, the real images are pulled and the same checks hold.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENSURE_DOCKER = ROOT / "tools" / "ensure-docker.sh"
BUILD = ROOT / "tools" / "base-images" / "build.sh"
IMAGES = ("python:3.13-slim", "node:20-slim")


def run(*args: str, timeout: float = 600, cwd: pathlib.Path | None = None) -> str:
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, cwd=cwd, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(args)} exited {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def docker_run(image: str, *cmd: str) -> str:
    return run("docker", "run", "--rm", image, *cmd, timeout=120).strip()


def image_id(image: str) -> str:
    return run("docker", "image", "inspect", "-f", "{{.Id}}", image).strip()


@pytest.fixture(scope="module")
def base_images() -> None:
    if shutil.which("docker") is None:
        pytest.fail("the `docker` CLI is not on PATH; install docker.io (tools/ensure-docker.sh)")
    run(str(ENSURE_DOCKER), timeout=300)
    # A cold build debootstraps twice; allow for a slow mirror.
    run(str(BUILD), timeout=1800)


@pytest.fixture
def build_dir(tmp_path: pathlib.Path) -> Iterator[tuple[pathlib.Path, str]]:
    tag = f"lumina-test/base-images:{uuid.uuid4().hex[:12]}"
    yield tmp_path, tag
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def test_ensure_docker_leaves_a_running_engine_alone(base_images: None) -> None:
    before = pathlib.Path("/run/docker.pid").read_text().strip()
    run(str(ENSURE_DOCKER), timeout=60)
    assert pathlib.Path("/run/docker.pid").read_text().strip() == before


ISOLATED_START = """\
set -eu
# Private /run, /var/lib/docker and network: the machine's own engine is neither
# seen nor touched, and whatever starts here dies with the namespace.
mount -t tmpfs tmpfs /run
mount --bind "$WORK/docker" /var/lib/docker
mkdir -p /var/lib/lumina-docker
mount --bind "$WORK/containerd" /var/lib/lumina-docker
ip link set lo up
stop() {
    for pidfile in /run/docker.pid /run/lumina-docker/containerd.pid; do
        [ -s "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 2
}
trap stop EXIT
# What a crashed engine leaves behind: a socket nobody listens on, a dead pid.
python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('/run/docker.sock')"
echo 999999 > /run/docker.pid
"$ENSURE"
docker info --format 'driver={{.CgroupDriver}}'
"$ENSURE"
"""


def test_ensure_docker_starts_an_engine_over_a_stale_socket(
    base_images: None, tmp_path: pathlib.Path
) -> None:
    if shutil.which("unshare") is None:
        pytest.fail("`unshare` (util-linux) is needed to start a throwaway engine")
    for sub in ("docker", "containerd"):
        (tmp_path / sub).mkdir()
    script = tmp_path / "start.sh"
    script.write_text(ISOLATED_START)
    proc = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "sh", str(script)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={
            "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "WORK": str(tmp_path),
            "ENSURE": str(ENSURE_DOCKER),
            "LUMINA_DOCKERD_WAIT": "60",
            "LUMINA_DOCKERD_LOG": str(tmp_path / "dockerd.log"),
            "LUMINA_DOCKER_CONTAINERD_LOG": str(tmp_path / "containerd.log"),
        },
    )
    assert proc.returncode == 0, f"{proc.stderr}\n{proc.stdout}"
    assert "driver=cgroupfs" in proc.stdout
    assert "starting dockerd" in proc.stderr
    assert proc.stderr.count("starting dockerd") == 1, "the second run must not start another"


def test_python_image_has_python_313_with_ssl_sqlite_and_venv(base_images: None) -> None:
    out = docker_run(
        "python:3.13-slim",
        "python",
        "-c",
        "import sys, venv, ssl, sqlite3; print('%d.%d' % sys.version_info[:2])",
    )
    assert out == "3.13"
    assert docker_run("python:3.13-slim", "sh", "-c", "command -v python; command -v pip") == (
        "/usr/local/bin/python\n/usr/local/bin/pip"
    )
    assert docker_run("python:3.13-slim", "sh", "-c", "echo $LANG") == "C.UTF-8"


def test_node_image_has_node_20_npm_10_and_the_node_user(base_images: None) -> None:
    assert docker_run("node:20-slim", "node", "-v").startswith("v20.")
    assert docker_run("node:20-slim", "npm", "-v").startswith("10.")
    assert docker_run("node:20-slim", "id", "-u", "node") == "1000"


def test_pip_install_in_a_multi_stage_build(
    base_images: None, build_dir: tuple[pathlib.Path, str]
) -> None:
    context, tag = build_dir
    # The patterns service Dockerfiles use: system-wide pip install, a venv,
    # copying site-packages between stages, and a non-root runtime user.
    (context / "Dockerfile").write_text(
        "FROM python:3.13-slim AS build\n"
        "RUN pip install --no-cache-dir six==1.17.0"
        " && python -m venv /opt/venv && /opt/venv/bin/pip install -q --no-cache-dir idna==3.10\n"
        "FROM python:3.13-slim\n"
        "COPY --from=build /usr/local/lib/python3.13/site-packages"
        " /usr/local/lib/python3.13/site-packages\n"
        "COPY --from=build /opt/venv /opt/venv\n"
        "RUN useradd --uid 10001 app\n"
        "USER app\n"
    )
    run("docker", "build", "-q", "-t", tag, str(context))
    assert docker_run(tag, "python", "-c", "import six; print(six.__version__)") == "1.17.0"
    assert (
        docker_run(tag, "/opt/venv/bin/python", "-c", "import idna; print(idna.__version__)")
        == "3.10"
    )


def test_npm_install_in_a_build(base_images: None, build_dir: tuple[pathlib.Path, str]) -> None:
    context, tag = build_dir
    (context / "package.json").write_text('{"name": "t", "version": "1.0.0"}\n')
    (context / "Dockerfile").write_text(
        "FROM node:20-slim\n"
        "WORKDIR /app\n"
        "COPY package.json ./\n"
        "RUN npm install --no-audit --no-fund is-number@7.0.0 && chown -R node:node /app\n"
        "USER node\n"
    )
    run("docker", "build", "-q", "-t", tag, str(context))
    assert docker_run(tag, "node", "-p", "require('is-number')(5)") == "true"


def test_second_run_is_a_no_op(base_images: None) -> None:
    before = {image: image_id(image) for image in IMAGES}
    proc = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert {image: image_id(image) for image in IMAGES} == before
    assert "debootstrap" not in proc.stderr and "import" not in proc.stderr, proc.stderr
