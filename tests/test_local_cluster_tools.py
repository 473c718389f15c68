"""The local cluster's build takes kubectl and Helm from the machine when they fit.

``plugins/local_cluster/scripts/build.sh`` is run for real on a private cache directory
(``LUMINA_CACHE``), with stand-in ``kubectl``/``helm`` executables that answer ``version``
the way the real tools do (``kubectl version --client -o json``, ``helm version
--template``). A stand-in ``go`` that always fails is first on PATH, so a test that
wrongly decides to compile fails at once instead of starting a build of Kubernetes.

``wipe.sh`` is run the same way, on a made-up cache of a stopped cluster (see below).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest

from plugins.local_cluster import provider as local_provider
from reconciler.cluster import providers

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


# --- wipe.sh ------------------------------------------------------------------------
# Run for real against a made-up cache in tmp_path, with nothing of the cluster running
# (down.sh must cope). Every directory the scripts touch is derived from LUMINA_CACHE
# and LUMINA_RUN_DIR, both pointed into tmp_path and checked first, so that the real
# ~/.cache/lumina and /run/lumina-cluster (a cluster may be running there) stay out of
# reach; the dry run's list is checked before anything is removed.

STATE = (
    "etcd/member/snap/db",
    "containerd/root/io.containerd.content.v1.content/blobs/sha256/ab",
    "containerd/root/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/bin/sh",
    "containerd.toml",
    "kubelet/pods/uid-1/volumes/kubernetes.io~projected/token/ca.crt",
    "kubelet.yaml",
    "kube-proxy.yaml",
    "coredns.yaml",
    "resolv.conf",
    "volumes/pvc-1/lumina.db",
    "image-registry/docker/registry/v2/blobs/data",
    "image-registry.yml",
    "pki/ca.key",
    "pki/node-ip",
    "admin.kubeconfig",
    "kubelet.kubeconfig",
    "kube-router.kubeconfig",
    "cni/net.d/10-lumina-bridge.conflist",
    "cni/ipam/lumina/last_reserved_ip.0",
    "images/pause.tar",
    "loaded-images",
)
COMPILE_CACHE = (
    "k8s/v1.34.4/bin/kube-apiserver",
    "k8s/v1.34.4/bin/kube-apiserver.version",
    "k8s/v1.34.4/bin/etcd",
    "k8s/src/kubernetes-v1.34.4/go.mod",
    "k8s/src/kubernetes-v1.34.4/.ready",
    "bin/helm",
    "build.lock",
    "base-images/debian.tar",
    "cluster/logs/build.log",
)
COMPONENTS = ("containerd", "etcd", "kube-apiserver", "kubelet", "image-registry")


@pytest.fixture
def cluster_cache(
    machine: tuple[pathlib.Path, dict[str, str]], tmp_path: pathlib.Path
) -> tuple[pathlib.Path, dict[str, str]]:
    """A cache of a stopped cluster: state, the compile cache, and stale PID files."""
    _, env = machine
    env = {
        **env,
        "LUMINA_RUN_DIR": str(tmp_path / "run"),
        "LUMINA_CNI_CACHE_DIR": str(tmp_path / "cni"),
    }
    cache = pathlib.Path(env["LUMINA_CACHE"])
    for relative in (*(f"cluster/{path}" for path in STATE), *COMPILE_CACHE):
        (cache / relative).parent.mkdir(parents=True, exist_ok=True)
        (cache / relative).write_text(relative)
    # Left by a cluster that stopped without down.sh: a PID no process can have.
    (cache / "cluster" / "pids").mkdir()
    for name in COMPONENTS:
        (cache / "cluster" / "pids" / f"{name}.pid").write_text("999999999\n")
    shm = tmp_path / "run" / "containerd" / "io.containerd.grpc.v1.cri" / "sandboxes" / "s1" / "shm"
    shm.mkdir(parents=True)
    return cache, env


def _wipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / "wipe.sh"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_scripts_paths_all_derive_from_lumina_cache_and_run_dir(
    cluster_cache: tuple[pathlib.Path, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    _, env = cluster_cache
    names = "CLUSTER_DIR RUN_DIR K8S_BIN LUMINA_BIN SRC_DIR LOG_DIR PID_DIR PKI_DIR"
    names += " KUBECONFIG_ADMIN CONTAINERD_SOCK"
    script = f'source "{SCRIPTS / "common.sh"}"; for v in {names}; do echo "${{!v}}"; done'
    shown = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(shown) == len(names.split())
    assert all(pathlib.Path(path).is_relative_to(tmp_path) for path in shown), shown


def test_wipe_removes_the_cluster_state_and_keeps_the_compile_cache(
    cluster_cache: tuple[pathlib.Path, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    cache, env = cluster_cache
    planned = _wipe(env, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    targets = re.findall(r"would (?:remove|unmount) (\S+)", planned.stdout)
    assert targets and all(pathlib.Path(t).is_relative_to(tmp_path) for t in targets), targets
    assert (cache / "cluster" / "etcd").exists()  # a dry run removes nothing

    done = _wipe(env)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "cluster stopped" in said  # down.sh ran, with nothing to stop
    assert not (tmp_path / "run").exists()
    assert sorted(path.name for path in (cache / "cluster").iterdir()) == [".lock", "logs"]
    for relative in COMPILE_CACHE:
        assert (cache / relative).read_text() == relative, f"{relative} was not kept"
    assert f"removing {cache / 'cluster' / 'etcd'} " in said
    assert f"removing {cache / 'cluster' / 'pids'} " in said
    assert f"keeping {cache / 'k8s'} (the built Kubernetes" in said
    assert "cluster wiped" in said

    again = _wipe(env)  # from nothing: still fine, and removes nothing more
    assert again.returncode == 0, again.stderr
    assert "removing" not in again.stdout


def test_wipe_refuses_a_cache_without_an_absolute_path(
    machine: tuple[pathlib.Path, dict[str, str]],
) -> None:
    _, env = machine
    refused = _wipe({**env, "LUMINA_CACHE": "relative/cache"})
    assert refused.returncode != 0
    assert "not an absolute path: refusing to wipe" in refused.stderr


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True, check=False).returncode == 0


def test_wipe_unmounts_what_the_kubelet_and_containerd_left_and_deletes_pod_netns(
    cluster_cache: tuple[pathlib.Path, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    """Mounts as a stopped cluster leaves them (the kubelet's bind mount of its root, made
    first, a pod's token volume in it, a sandbox's shm), and a pod's network namespace
    named by this cluster's IPAM and CNI's cache: all gone after the wipe, where `rm`
    alone would fail with "Device or resource busy"."""
    if os.geteuid() != 0:
        pytest.skip("mounts and network namespaces need root")
    cache, env = cluster_cache
    kubelet = cache / "cluster" / "kubelet"
    volume = kubelet / "pods" / "uid-1" / "volumes" / "kubernetes.io~projected" / "token"
    shm = tmp_path / "run" / "containerd" / "io.containerd.grpc.v1.cri" / "sandboxes" / "s1" / "shm"
    netns = f"lumina-wipe-test-{os.getpid()}"
    sandbox = f"{os.getpid():064x}"
    try:
        if not (
            _mount("--bind", str(kubelet), str(kubelet))
            and _mount("-t", "tmpfs", "tmpfs", str(volume))
            and _mount("-t", "tmpfs", "shm", str(shm))
        ):
            pytest.skip("mount is not permitted here")
        subprocess.run(["ip", "netns", "add", netns], check=True)
        (cache / "cluster" / "cni" / "ipam" / "lumina" / "10.244.0.7").write_text(
            f"{sandbox}\neth0"
        )
        results = tmp_path / "cni" / "results"
        results.mkdir(parents=True)
        interfaces = [{"name": "eth0", "sandbox": f"/var/run/netns/{netns}"}]
        cached = {"kind": "cniCacheV1", "result": {"interfaces": interfaces}}
        (results / f"lumina-{sandbox}-eth0").write_text(json.dumps(cached))

        done = _wipe(env)
        said = done.stdout + done.stderr
        assert done.returncode == 0, said
        assert f"unmounting {volume}" in said and f"unmounting {shm}" in said
        assert f"deleting the pods' network namespace {netns}" in said
        assert str(tmp_path) not in pathlib.Path("/proc/self/mountinfo").read_text()
        assert not kubelet.exists() and not (tmp_path / "run").exists()
        assert not pathlib.Path(f"/run/netns/{netns}").exists()
    finally:
        for point in (volume, shm, kubelet):
            subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "delete", netns], capture_output=True, check=False)


def test_the_local_provider_wipes_through_wipe_sh(
    cluster_cache: tuple[pathlib.Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, env = cluster_cache
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    provider = local_provider.LocalClusterProvider(output_to_terminal=False)
    assert isinstance(provider, providers.WipeableProvider)
    provider.wipe()
    assert not (cache / "cluster" / "pki").exists()
    assert (cache / "k8s" / "v1.34.4" / "bin" / "kube-apiserver").exists()
