"""Provider choice, and the minikube/kind providers' commands.

minikube and kind cannot run on this project's machines (no VM driver, no node images),
so these tests put stand-in ``minikube``/``kind`` executables on PATH — the edge of the
provider, behind the same command-line interface the real tools have — and check that
the provider drives them as their documentation says (the seed's start flags, the
docker-env of the minikube engine, ``kind load``, kind's ``--config`` with
``extraPortMappings``, the URL ``minikube service --url`` prints: ``http://{{.IP}}:{{.Port}}``).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
import yaml

from plugins import context_cluster, kind_cluster, minikube_cluster
from reconciler import discovery, errors, settings
from reconciler.cli import wiring
from reconciler.cluster import app_urls, providers


def _stand_in(bin_dir: pathlib.Path, name: str, body: str) -> pathlib.Path:
    log = bin_dir / f"{name}.log"
    script = bin_dir / name
    script.write_text("#!/bin/sh\n" + f'echo "$@" >> {log}\n' + textwrap.dedent(body))
    script.chmod(0o755)
    return log


def test_all_four_providers_are_registered() -> None:
    found, problems = discovery.discover_providers()
    assert problems == []
    assert {"minikube", "kind", "context", "local"} <= set(found)


def test_unknown_provider_is_named(project: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINA_CLUSTER", "k3s")
    with pytest.raises(errors.SettingsError, match="'k3s' is not installed"):
        wiring.choose_provider(settings.load_settings(project))


def test_auto_prefers_minikube_when_it_exists(
    project: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stand_in(tmp_path, "minikube", "exit 0\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert wiring.choose_provider(settings.load_settings(project)).name == "minikube"


def test_minikube_starts_with_the_seed_resources_and_builds_into_its_engine(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _stand_in(
        tmp_path,
        "minikube",
        """
        case "$*" in
          *"status -o json"*) echo '{"Host":"Stopped","APIServer":"Stopped"}'; exit 7 ;;
          *"docker-env --shell none"*)
            echo DOCKER_TLS_VERIFY=1; echo DOCKER_HOST=tcp://192.168.49.2:2376 ;;
          *" ip"*) echo 192.168.49.2 ;;
        esac
        """,
    )
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    provider = minikube_cluster.MinikubeProvider()
    info = provider.ensure_up()
    assert info.node_ip == "192.168.49.2" and info.context == "minikube"
    assert "-p minikube start --memory=4096 --cpus=2" in log.read_text()
    assert provider.docker_env() == {
        "DOCKER_TLS_VERIFY": "1",
        "DOCKER_HOST": "tcp://192.168.49.2:2376",
    }


def test_kind_loads_built_images(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _stand_in(tmp_path, "kind", "exit 0\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    kind_cluster.KindProvider().load_images(["lumina/backend:abc"])
    assert "load docker-image --name lumina lumina/backend:abc" in log.read_text()


def _minikube_stand_in(bin_dir: pathlib.Path, driver: str) -> pathlib.Path:
    profiles = (
        '{"invalid":[],"valid":[{"Name":"minikube","Status":"Running",'
        f'"Config":{{"Name":"minikube","Driver":"{driver}"}}}}]}}'
    )
    return _stand_in(
        bin_dir,
        "minikube",
        f"""
        case "$*" in
          *"status -o json"*) echo '{{"Host":"Running","APIServer":"Running"}}' ;;
          *"profile list -o json"*) echo '{profiles}' ;;
          *" ip"*) echo 192.168.49.2 ;;
        esac
        """,
    )


def test_minikube_offers_the_node_ip_and_node_port_as_minikube_service_does(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _minikube_stand_in(tmp_path, "kvm2")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    info = minikube_cluster.MinikubeProvider().ensure_up()
    assert info.app_url == "http://192.168.49.2:30080"
    assert "minikube service frontend -n lumina --url" in info.app_url_note
    assert "start" not in log.read_text()  # running already: not started again


def test_minikube_docker_driver_on_a_linux_engine_is_reachable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _minikube_stand_in(tmp_path, "docker")
    _stand_in(tmp_path, "docker", 'echo "Debian GNU/Linux 13 (trixie)"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert minikube_cluster.MinikubeProvider().ensure_up().app_url == "http://192.168.49.2:30080"


def test_minikube_behind_docker_desktop_offers_no_url_but_the_tunnel(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _minikube_stand_in(tmp_path, "docker")
    docker_log = _stand_in(tmp_path, "docker", 'echo "Docker Desktop"\n')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    info = minikube_cluster.MinikubeProvider().ensure_up()
    assert info.app_url == ""
    assert "`minikube service frontend -n lumina --url`" in info.app_url_note
    assert "info --format {{.OperatingSystem}}" in docker_log.read_text()


def _kind_stand_ins(bin_dir: pathlib.Path, *, exists: bool, bindings: str) -> pathlib.Path:
    clusters = "lumina" if exists else ""
    _stand_in(
        bin_dir,
        "docker",
        f"""
        case "$*" in
          *PortBindings*) echo '{bindings}' ;;
          *IPAddress*) echo 172.18.0.2 ;;
        esac
        """,
    )
    # `create cluster ... --config FILE`: keep a copy of the config kind was given.
    return _stand_in(
        bin_dir,
        "kind",
        f"""
        case "$1 $2" in
          "get clusters") echo "{clusters}" ;;
          "create cluster")
            while [ $# -gt 0 ]; do
              [ "$1" = --config ] && cp "$2" {bin_dir}/kind-config.yaml
              shift
            done ;;
        esac
        """,
    )


def test_kind_creates_its_cluster_publishing_the_node_port_on_loopback(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bindings = '{"30080/tcp":[{"HostIp":"127.0.0.1","HostPort":"30080"}]}'
    log = _kind_stand_ins(tmp_path, exists=False, bindings=bindings)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    info = kind_cluster.KindProvider().ensure_up()
    created = next(line for line in log.read_text().splitlines() if line.startswith("create"))
    assert created.startswith("create cluster --name lumina --config ")
    assert created.endswith(" --wait 120s")
    config = yaml.safe_load((tmp_path / "kind-config.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    (node,) = config["nodes"]
    assert node["role"] == "control-plane"
    assert node["extraPortMappings"] == [
        {"containerPort": 30080, "hostPort": 30080, "listenAddress": "127.0.0.1", "protocol": "TCP"}
    ]
    assert info.app_url == "http://127.0.0.1:30080"
    assert info.context == "kind-lumina" and info.node_ip == "172.18.0.2"


def test_kind_cluster_made_without_the_mapping_says_what_to_do(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _kind_stand_ins(tmp_path, exists=True, bindings='{"6443/tcp":[{"HostPort":"41234"}]}')
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    info = kind_cluster.KindProvider().ensure_up()
    assert "create" not in log.read_text()
    assert info.app_url == ""
    assert "kind delete cluster --name lumina" in info.app_url_note
    assert "port-forward svc/frontend" in info.app_url_note


def test_kind_mapping_on_every_address_is_reached_on_loopback() -> None:
    assert (
        kind_cluster._published_address('{"30080/tcp":[{"HostIp":"0.0.0.0","HostPort":"30080"}]}')
        == "127.0.0.1"
    )
    assert kind_cluster._published_address("null") is None
    assert kind_cluster._published_address("not json") is None


def _node(ready: str, *addresses: tuple[str, str]) -> dict[str, object]:
    return {
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "addresses": [{"type": kind, "address": value} for kind, value in addresses],
        }
    }


def test_context_offers_a_ready_nodes_external_then_internal_address() -> None:
    nodes = [
        _node("False", ("ExternalIP", "203.0.113.9")),
        _node("True", ("InternalIP", "10.0.0.5"), ("Hostname", "node-a")),
    ]
    assert context_cluster.best_address(nodes) == "10.0.0.5"
    nodes.append(_node("True", ("InternalIP", "10.0.0.6"), ("ExternalIP", "198.51.100.7")))
    assert context_cluster.best_address(nodes) == "198.51.100.7"
    assert context_cluster.best_address([]) is None
    assert providers.node_port_url("fd00::5") == "http://[fd00::5]:30080"


def test_the_url_is_remembered_for_status(tmp_path: pathlib.Path) -> None:
    assert app_urls.recorded(tmp_path) is None
    assert "not known yet" in app_urls.describe(None)
    info = providers.ClusterInfo(
        tmp_path / "kubeconfig", "kind-lumina", "172.18.0.2", "http://127.0.0.1:30080"
    )
    written = app_urls.record(tmp_path / "state", "kind", info)
    assert app_urls.recorded(tmp_path / "state") == written
    assert written["app_url"] == "http://127.0.0.1:30080" and written["provider"] == "kind"
    assert app_urls.describe(written) == "app: http://127.0.0.1:30080"
    no_url = providers.ClusterInfo(tmp_path, "c", "", app_url_note="use a port-forward")
    line = app_urls.describe(app_urls.record(tmp_path / "state", "context", no_url))
    assert line == "app: no URL from the context provider: use a port-forward"
    (tmp_path / "state" / app_urls.FILE).write_text("{broken")
    assert app_urls.recorded(tmp_path / "state") is None


def test_without_a_named_context_the_kubeconfigs_current_one_is_named(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What kubectl would use is what Helm and the API clients are told, by name: an
    empty context must never reach them (it names no context at all)."""
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\ncurrent-context: team\n")
    monkeypatch.delenv("LUMINA_KUBE_CONTEXT", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{kubeconfig}{os.pathsep}/elsewhere/config")
    provider = context_cluster.ContextProvider()
    assert provider.kubeconfig == kubeconfig
    assert provider._current_context() == "team"
    kubeconfig.write_text("not: [a kubeconfig")
    assert provider._current_context() is None


def test_only_the_local_provider_can_wipe() -> None:
    found, _ = discovery.discover_providers()
    wipeable = {name for name, p in found.items() if isinstance(p, providers.WipeableProvider)}
    assert {"minikube", "kind", "context"}.isdisjoint(wipeable)
    assert "local" in wipeable


@pytest.mark.parametrize(
    ("provider", "instead"),
    [
        ("minikube", "`minikube delete`"),
        ("kind", "`kind delete cluster --name lumina`"),
        ("context", "`kubectl delete namespace lumina`"),
    ],
)
def test_cluster_wipe_where_the_provider_cannot_says_what_to_run(
    project: pathlib.Path, tmp_path: pathlib.Path, provider: str, instead: str
) -> None:
    """No wipe, no question, no call of the provider's tool: the provider is named, and
    what to run instead."""
    calls = _stand_in(tmp_path, provider if provider != "context" else "kubectl", "exit 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "cluster", "wipe", "--repo", str(project)],
        env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "LUMINA_CLUSTER": provider},
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert f"the {provider} cluster provider cannot wipe its cluster" in said
    assert instead in said
    assert not calls.exists()
