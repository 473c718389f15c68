"""Provider choice, and the minikube/kind providers' commands.

minikube and kind cannot run on this project's machines (no VM driver, no node images),
so these tests put stand-in ``minikube``/``kind`` executables on PATH — the edge of the
provider, behind the same command-line interface the real tools have — and check that
the provider drives them as their documentation says (the seed's start flags, the
docker-env of the minikube engine, ``kind load``).
"""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from plugins import kind_cluster, minikube_cluster
from reconciler import discovery, errors, settings
from reconciler.cli import wiring


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
