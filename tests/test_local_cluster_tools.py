"""The local cluster's build takes kubectl and Helm from the machine when they fit.

``plugins/local_cluster/scripts/build.sh`` is run for real on a private cache directory
(``LUMINA_CACHE``), with stand-in ``kubectl``/``helm`` executables that answer ``version``
the way the real tools do (``kubectl version --client -o json``, ``helm version
--template``). A stand-in ``go`` that always fails is first on PATH, so a test that
wrongly decides to compile fails at once instead of starting a build of Kubernetes.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess

import pytest

SCRIPTS = pathlib.Path(__file__).resolve().parents[1] / "plugins" / "local_cluster" / "scripts"


def _tool(bin_dir: pathlib.Path, name: str, body: str) -> pathlib.Path:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def _kubectl(bin_dir: pathlib.Path, version: str) -> pathlib.Path:
    answer = json.dumps({"clientVersion": {"gitVersion": version}})
    return _tool(bin_dir, "kubectl", f"echo '{answer}'\n")


def _helm(bin_dir: pathlib.Path, version: str) -> pathlib.Path:
    return _tool(bin_dir, "helm", f"echo '{version}'\n")


@pytest.fixture
def machine(tmp_path: pathlib.Path) -> tuple[pathlib.Path, dict[str, str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "go", "echo 'go must not run in these tests' >&2; exit 99\n")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LUMINA_CACHE": str(tmp_path / "cache"),
    }
    return bin_dir, env


def _build(env: dict[str, str], *targets: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / "build.sh"), *targets],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _supported(env: dict[str, str], tool: str, version: str) -> bool:
    script = f'source "{SCRIPTS / "common.sh"}"; supported {tool} {version}'
    return subprocess.run(["bash", "-c", script], env=env, check=False).returncode == 0


@pytest.mark.parametrize(
    ("tool", "version", "expected"),
    [
        ("kubectl", "v1.34.4", True),
        ("kubectl", "v1.33.1", True),
        ("kubectl", "v1.35.0", True),
        ("kubectl", "v1.32.4-dispatcher", False),
        ("kubectl", "v1.36.0", False),
        ("kubectl", "garbage", False),
        ("helm", "v3.22.0", True),
        ("helm", "v3.8.0", True),
        ("helm", "v4.0.1", True),
        ("helm", "v3.7.2", False),
        ("helm", "v2.17.0", False),
    ],
)
def test_supported_versions(
    machine: tuple[pathlib.Path, dict[str, str]], tool: str, version: str, expected: bool
) -> None:
    assert _supported(machine[1], tool, version) is expected


def test_kubectl_and_helm_on_path_are_used_not_built(
    machine: tuple[pathlib.Path, dict[str, str]],
) -> None:
    bin_dir, env = machine
    kubectl = _kubectl(bin_dir, "v1.33.2")
    _helm(bin_dir, "v3.19.0")
    done = _build(env, "kubectl", "helm")
    assert done.returncode == 0, done.stderr
    assert f"kubectl: using {kubectl} (v1.33.2), not building" in done.stdout
    assert "helm: using" in done.stdout and "(v3.19.0), not building" in done.stdout
    cache = pathlib.Path(env["LUMINA_CACHE"])
    # The scripts run $LUMINA_BIN/kubectl when none was built: it is the machine's.
    assert (cache / "bin" / "kubectl").resolve() == kubectl
    assert not (cache / "k8s" / "v1.34.4" / "bin" / "kubectl").exists()


def test_a_kubectl_outside_the_skew_is_built_instead(
    machine: tuple[pathlib.Path, dict[str, str]],
) -> None:
    bin_dir, env = machine
    _kubectl(bin_dir, "v1.32.4")
    done = _build(env, "kubectl")
    # It decides to build, and so reaches the (failing) stand-in go.
    assert "is v1.32.4, outside what this cluster supports: building v1.34.4" in done.stdout
    assert done.returncode != 0 and "go must not run" in done.stdout + done.stderr


def test_lumina_kubectl_names_one_whatever_its_version(
    machine: tuple[pathlib.Path, dict[str, str]],
) -> None:
    bin_dir, env = machine
    other = bin_dir / "elsewhere"
    other.mkdir()
    kubectl = _kubectl(other, "v1.32.4")
    done = _build({**env, "LUMINA_KUBECTL": str(kubectl)}, "kubectl")
    assert done.returncode == 0, done.stderr
    assert f"kubectl: using {kubectl} (v1.32.4), not building" in done.stdout


def test_a_kubectl_already_built_keeps_being_used(
    machine: tuple[pathlib.Path, dict[str, str]],
) -> None:
    bin_dir, env = machine
    _kubectl(bin_dir, "v1.34.0")
    built_dir = pathlib.Path(env["LUMINA_CACHE"]) / "k8s" / "v1.34.4" / "bin"
    built_dir.mkdir(parents=True)
    built = _kubectl(built_dir, "v1.34.4")
    (built_dir / "kubectl.version").write_text("v1.34.4\n")
    done = _build(env, "kubectl")
    assert done.returncode == 0, done.stderr
    assert "kubectl v1.34.4 already built" in done.stdout
    assert (pathlib.Path(env["LUMINA_CACHE"]) / "bin" / "kubectl").resolve() == built
    script = f'source "{SCRIPTS / "common.sh"}"; kubectl_bin'
    chosen = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert chosen == str(built)


def test_go_is_not_needed_when_nothing_must_be_built(
    machine: tuple[pathlib.Path, dict[str, str]],
) -> None:
    # The point of the stand-in go: it is never reached when both tools fit.
    bin_dir, env = machine
    _kubectl(bin_dir, "v1.34.4")
    _helm(bin_dir, "v3.22.0")
    done = _build(env, "kubectl", "helm")
    assert done.returncode == 0 and "go must not run" not in done.stderr
    assert os.listdir(pathlib.Path(env["LUMINA_CACHE"]) / "bin") == ["kubectl"]
