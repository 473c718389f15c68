"""The README's bootstrap as an ordinary user (issue 17): no root, no apt, no Go build.

A Linux user is made for this module with what the seed's developer has: membership of
the ``docker`` group (the engine's socket), a kubeconfig for the real cluster (a
``team`` context, as a team hands one out), Helm on their PATH, a Python and nox in
their home — and nothing of root's: their PATH starts with stand-ins for ``apt-get``,
``sudo`` and ``go`` that record any call and fail. As that user, in their own clone,
``nox -s bootstrap`` runs with ``LUMINA_CLUSTER=context`` and a registry on 127.0.0.1
(a shared cluster gets images from a registry; here, one started for this module). It
must succeed, call none of the stand-ins, and print the app's URL, which must answer.

Making the user needs root (useradd, the docker group, a Python install they may
read); CI runs as root, and without it this fails saying so. The user's clone names
this module's own environment (namespace, NodePort), which bootstrap installs from
nothing; at the end the user's daemon is stopped, the user removed and the environment
deleted.
"""

from __future__ import annotations

import os
import pathlib
import pwd
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import environments
import pytest
import yaml
from conftest import helm_status, run

ENVIRONMENT = environments.for_module(__file__)
USER = "lumina-e2e-user"
TOOLS = pathlib.Path("/opt/lumina-e2e")
#: Every call to one of these means bootstrap reached for root's ways.
FORBIDDEN = ("apt-get", "apt", "sudo", "go", "debootstrap")
NOX = "nox==2026.10.20"
MACHINE_ENV = ("PIP_", "SSL_CERT_", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS")


def _as_user(
    home: pathlib.Path, env: dict[str, str], *argv: str, cwd: pathlib.Path, timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as the user, with only the environment given (nothing of root's)."""
    assignments = [f"{key}={value}" for key, value in env.items()]
    return subprocess.run(
        [
            "runuser",
            "-u",
            USER,
            "--",
            "env",
            "-i",
            f"HOME={home}",
            f"USER={USER}",
            *assignments,
            *argv,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _stand_ins(directory: pathlib.Path, record: pathlib.Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in FORBIDDEN:
        stand_in = directory / name
        stand_in.write_text(f'#!/bin/sh\necho "{name} $*" >> {record}\nexit 1\n')
        stand_in.chmod(0o755)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pathlib.Path]:
    """An ordinary user in the docker group; their home."""
    if os.geteuid() != 0:
        pytest.fail("making a Linux user for this test needs root (useradd, usermod)")
    for tool in ("useradd", "userdel", "runuser"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed to make the test's user (Debian's passwd/util-linux)")
    subprocess.run(["userdel", "-r", USER], capture_output=True, check=False)
    run("useradd", "--create-home", "--shell", "/bin/sh", "--groups", "docker", USER)
    home = pathlib.Path(pwd.getpwnam(USER).pw_dir)
    yield home
    subprocess.run(["pkill", "-u", USER], capture_output=True, check=False)
    subprocess.run(["userdel", "-r", USER], capture_output=True, check=False)


@pytest.fixture(scope="module")
def tools(helm_env: dict[str, str]) -> pathlib.Path:
    """What the user has installed, where they may read it: a Python (this one's) and Helm."""
    python_home = TOOLS / "python"
    if not (python_home / "bin" / "python3").exists():
        shutil.rmtree(python_home, ignore_errors=True)
        shutil.copytree(sys.base_prefix, python_home, symlinks=True)
    bin_dir = TOOLS / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(helm_env["helm"], bin_dir / "helm")
    for path in (TOOLS, *TOOLS.rglob("*")):
        mode = path.lstat().st_mode
        if not path.is_symlink():
            path.chmod(mode | 0o044 | (0o011 if path.is_dir() or mode & 0o100 else 0))
    return TOOLS


def _team_kubeconfig(helm_env: dict[str, str], home: pathlib.Path) -> pathlib.Path:
    admin = yaml.safe_load(pathlib.Path(helm_env["kubeconfig"]).read_text())
    team = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "shared", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "me", "user": admin["users"][0]["user"]}],
        "contexts": [{"name": "team", "context": {"cluster": "shared", "user": "me"}}],
        "current-context": "team",
    }
    path = home / ".kube" / "config"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(team))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def from_nothing() -> Iterator[None]:
    """The module's environment absent before (what a killed run left is deleted) and
    deleted after."""
    environments.delete(ENVIRONMENT)
    yield
    environments.delete(ENVIRONMENT, wait=False)


def test_bootstrap_as_an_ordinary_user_uses_what_they_have(
    account: pathlib.Path,
    tools: pathlib.Path,
    helm_env: dict[str, str],
    registry_servers: Callable[..., Any],
    from_nothing: None,
) -> None:
    home = account
    registry = registry_servers()
    record = home / "forbidden-calls.log"
    _stand_ins(home / "stand-ins", record)
    kubeconfig = _team_kubeconfig(helm_env, home)
    # Their clone, from nothing (no secrets, no state), naming this module's environment.
    repo = environments.clone(ENVIRONMENT, home / "lumina")
    assert not (repo / "config" / "secrets.env").exists() and not (repo / ".lumina").exists()
    run("chown", "-R", f"{USER}:{USER}", str(home))
    path = ":".join(
        [
            str(home / "stand-ins"),
            str(home / "venv" / "bin"),
            str(tools / "python" / "bin"),
            str(tools / "bin"),
            "/usr/local/bin",
            "/usr/bin",
            "/bin",
        ]
    )
    env = {
        "PATH": path,
        # This Python was built shared, linked to where it was first installed.
        "LD_LIBRARY_PATH": str(tools / "python" / "lib"),
        "LUMINA_CLUSTER": "context",
        "LUMINA_REGISTRY": f"{registry.address}/lumina",
        "KUBECONFIG": str(kubeconfig),
        # The machine's own trust store and package mirrors, as any user here has them.
        **{key: value for key, value in os.environ.items() if key.startswith(MACHINE_ENV)},
    }
    made = _as_user(
        home,
        env,
        str(tools / "python" / "bin" / "python3"),
        "-m",
        "venv",
        str(home / "venv"),
        cwd=home,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    installed = _as_user(home, env, "pip", "install", "--quiet", NOX, cwd=home, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        booted = _as_user(home, env, "nox", "-s", "bootstrap", cwd=repo, timeout=1500)
        output = booted.stdout + booted.stderr
        assert booted.returncode == 0, output[-6000:]
        forbidden = record.read_text() if record.exists() else ""
        assert forbidden == "", f"bootstrap reached for root's tools:\n{forbidden}"
        found = re.search(r"Lumina Todo: (http://\S+)", output)
        assert found, output[-3000:]
        # The node's address (the context provider's), at this environment's NodePort.
        assert found.group(1).endswith(f":{ENVIRONMENT.node_port}"), output[-3000:]
        with urllib.request.urlopen(f"{found.group(1)}/api/health", timeout=10) as answer:
            assert answer.status == 200
        # Installed in this module's namespace, its JWT key made for it by bootstrap.
        assert helm_status(helm_env, ENVIRONMENT.namespace) == "deployed"
        assert "JWT_SECRET_KEY=" in (repo / "config" / "secrets.env").read_text()
    finally:
        _as_user(
            home,
            env,
            str(repo / ".nox" / "bootstrap" / "bin" / "lumina-reconcile"),
            "stop",
            cwd=repo,
            timeout=120,
        )
