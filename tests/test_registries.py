"""The registry adapter against a real registry and the real Docker engine."""

from __future__ import annotations

import io
import pathlib
import socket
import tarfile
import uuid
from collections.abc import Callable, Iterator

import pytest
from conftest import RegistryServer, write

from reconciler import errors
from reconciler.building import builds, registries


@pytest.fixture
def docker_client() -> object:
    return builds.connect({})


@pytest.fixture
def tiny_image(docker_client: object) -> Iterator[Callable[[str], str]]:
    """Build a one-file image under a given repository; returns its reference."""
    made: list[str] = []

    def build(repository: str) -> str:
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            for name, data in {
                "Dockerfile": b"FROM scratch\nCOPY hello /hello\n",
                "hello": uuid.uuid4().hex.encode(),  # a fresh layer: nothing cached anywhere
            }.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        archive.seek(0)
        reference = f"{repository}:{uuid.uuid4().hex[:12]}"
        docker_client.images.build(fileobj=archive, custom_context=True, tag=reference)  # type: ignore[attr-defined]
        made.append(reference)
        return reference

    yield build
    for reference in made:
        docker_client.images.remove(reference, force=True)  # type: ignore[attr-defined]


def test_a_pushed_tag_is_reported_present_by_the_registry(
    registry_servers: Callable[..., RegistryServer],
    docker_client: object,
    tiny_image: Callable[[str], str],
) -> None:
    server = registry_servers()
    reference = tiny_image(registries.repository(server.address + "/lumina/", "svc"))
    assert reference.startswith(f"{server.address}/lumina/svc:")
    assert registries.has(docker_client, reference, None) is False
    lines: list[tuple[str, str]] = []
    digest = registries.push(
        docker_client, "svc", reference, None, lambda service, line: lines.append((service, line))
    )
    assert digest.startswith("sha256:")
    assert any("Pushed" in line for _, line in lines), lines
    assert all(service == "svc" for service, _ in lines)
    assert not any(line.startswith("Pushing") for _, line in lines), "byte progress floods"
    assert registries.has(docker_client, reference, None) is True
    assert server.pushes() == [reference.removeprefix(server.address + "/")]


def test_a_refused_push_is_a_push_error_naming_service_and_reference(
    registry_servers: Callable[..., RegistryServer],
    docker_client: object,
    tiny_image: Callable[[str], str],
) -> None:
    server = registry_servers(read_only=True)
    reference = tiny_image(f"{server.address}/svc")
    assert registries.has(docker_client, reference, None) is False  # it still answers
    lines: list[str] = []
    with pytest.raises(registries.PushError) as raised:
        registries.push(docker_client, "svc", reference, None, lambda _s, line: lines.append(line))
    assert f"push of svc to {reference} failed" in str(raised.value)
    assert raised.value.retry_after > 0
    assert any(line.startswith("ERROR ") for line in lines)
    assert server.pushes() == []


def test_a_registry_that_does_not_answer_cannot_be_asked(docker_client: object) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    with pytest.raises(registries.RegistryError) as raised:
        registries.has(docker_client, f"127.0.0.1:{closed}/svc:abc", None)
    assert f"127.0.0.1:{closed}/svc:abc" in str(raised.value)
    assert "start the registry" in raised.value.hint


def test_credentials_reach_the_engine_and_never_the_log(
    registry_servers: Callable[..., RegistryServer],
    docker_client: object,
    tiny_image: Callable[[str], str],
) -> None:
    """An open registry ignores the account; the push must still carry it unlogged."""
    server = registry_servers()
    reference = tiny_image(f"{server.address}/svc")
    account = registries.Credentials("lumina", "s3cret-never-shown")
    assert registries.has(docker_client, reference, account) is False
    lines: list[str] = []
    registries.push(docker_client, "svc", reference, account, lambda _s, line: lines.append(line))
    assert lines and not any("s3cret-never-shown" in line for line in lines)
    assert "s3cret-never-shown" not in repr(account)
    assert account.auth_config() == {"username": "lumina", "password": "s3cret-never-shown"}


def test_credentials_come_from_the_secrets_file_before_the_environment(
    tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "secrets.env"
    assert registries.credentials(source, {}) is None
    env = {"LUMINA_REGISTRY_USERNAME": "env-user", "LUMINA_REGISTRY_PASSWORD": "env-pass"}
    assert registries.credentials(source, env) == registries.Credentials("env-user", "env-pass")
    write(tmp_path, "secrets.env", "LUMINA_REGISTRY_USERNAME=file-user\n")
    found = registries.credentials(source, env)
    assert found == registries.Credentials("file-user", "env-pass")


def test_half_a_registry_account_is_an_error_naming_the_missing_key(
    tmp_path: pathlib.Path,
) -> None:
    source = write(tmp_path, "secrets.env", "LUMINA_REGISTRY_USERNAME=someone\n")
    with pytest.raises(errors.SettingsError) as raised:
        registries.credentials(source, {})
    assert "LUMINA_REGISTRY_PASSWORD" in str(raised.value)
