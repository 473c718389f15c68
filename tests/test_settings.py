"""Settings from defaults, ``config/lumina.toml`` and ``LUMINA_*``: errors name the key."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
from conftest import write

from reconciler import errors, settings


def test_defaults(project: pathlib.Path) -> None:
    config = settings.load_settings(project)
    assert config.namespace == "lumina"
    assert config.release == "lumina-todo"
    assert config.chart == "helm/lumina-todo"
    assert config.mode is settings.TriggerMode.WORKTREE
    assert config.repo == project.resolve()


def test_file_then_environment_precedence(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(project, "config/lumina.toml", 'namespace = "from-file"\nbuild_concurrency = 3\n')
    monkeypatch.setenv("LUMINA_BUILD_CONCURRENCY", "4")
    config = settings.load_settings(project)
    assert config.namespace == "from-file"
    assert config.build_concurrency == 4


def test_unknown_key_in_file_names_key_and_file(project: pathlib.Path) -> None:
    write(project, "config/lumina.toml", "namespace = 'x'\nbuild_concurency = 3\n")
    with pytest.raises(errors.SettingsError) as caught:
        settings.load_settings(project)
    assert "build_concurency" in str(caught.value)
    assert "config/lumina.toml" in str(caught.value)


def test_wrong_type_in_file_names_key_and_file(project: pathlib.Path) -> None:
    write(project, "config/lumina.toml", "build_concurrency = 'many'\n")
    with pytest.raises(errors.SettingsError, match=r"lumina\.toml: build_concurrency"):
        settings.load_settings(project)


def test_malformed_file(project: pathlib.Path) -> None:
    write(project, "config/lumina.toml", "namespace = \n")
    with pytest.raises(errors.SettingsError, match="not valid TOML"):
        settings.load_settings(project)


def test_bad_environment_values(project: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINA_MODE", "sometimes")
    with pytest.raises(errors.SettingsError, match="LUMINA_MODE"):
        settings.load_settings(project)
    monkeypatch.delenv("LUMINA_MODE")
    monkeypatch.setenv("LUMINA_NAMESPCE", "typo")
    with pytest.raises(errors.SettingsError, match="unknown setting LUMINA_NAMESPCE"):
        settings.load_settings(project)


def test_cli_reports_bad_settings_without_traceback(project: pathlib.Path) -> None:
    write(project, "config/lumina.toml", "status_port = 700000\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--repo", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "status_port" in result.stderr and "Traceback" not in result.stderr


def test_cli_reports_a_directory_that_is_not_a_repository(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--mode", "commit", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "not a git repository" in result.stderr


def test_registry_is_checked_and_its_credentials_are_no_unknown_settings(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LUMINA_REGISTRY", "127.0.0.1:5000/lumina")
    monkeypatch.setenv("LUMINA_REGISTRY_USERNAME", "someone")
    monkeypatch.setenv("LUMINA_REGISTRY_PASSWORD", "not a setting")
    config = settings.load_settings(project)
    assert config.registry == "127.0.0.1:5000/lumina"
    assert "not a setting" not in repr(config)
    monkeypatch.setenv("LUMINA_REGISTRY", "http://127.0.0.1:5000")
    with pytest.raises(errors.SettingsError, match="LUMINA_REGISTRY"):
        settings.load_settings(project)


def test_notify_webhooks_from_a_comma_list_a_json_list_or_the_file(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.load_settings(project).notify_webhooks == []
    write(project, "config/lumina.toml", 'notify_webhooks = ["http://127.0.0.1:9000/a"]\n')
    assert [str(url) for url in settings.load_settings(project).notify_webhooks] == [
        "http://127.0.0.1:9000/a"
    ]
    monkeypatch.setenv("LUMINA_NOTIFY_WEBHOOKS", "https://hooks.example.com/x, http://h:1/y")
    assert [str(url) for url in settings.load_settings(project).notify_webhooks] == [
        "https://hooks.example.com/x",
        "http://h:1/y",
    ]
    monkeypatch.setenv("LUMINA_NOTIFY_WEBHOOKS", '["http://h:1/z"]')
    assert [str(url) for url in settings.load_settings(project).notify_webhooks] == ["http://h:1/z"]
    monkeypatch.setenv("LUMINA_NOTIFY_WEBHOOKS", "ftp://h/z")
    with pytest.raises(errors.SettingsError, match="LUMINA_NOTIFY_WEBHOOKS"):
        settings.load_settings(project)


@pytest.mark.parametrize(
    "value",
    [
        "https://hooks.example.com/services/T0/B0/SeCrEt,ftp://user:SeCrEt@h/x?token=SeCrEt",
        '["https://hooks.example.com/SeCrEt", "ftp://h/SeCrEt"]',
        '["https://hooks.example.com/SeCrEt", "ftp://h/SeCrEt"',
        "http://h:notaport/SeCrEt",
    ],
)
def test_a_bad_webhook_url_is_named_without_its_token(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LUMINA_NOTIFY_WEBHOOKS", value)
    with pytest.raises(errors.SettingsError, match="LUMINA_NOTIFY_WEBHOOKS") as raised:
        settings.load_settings(project)
    assert "SeCrEt" not in str(raised.value)


def test_a_bad_webhook_url_in_the_file_is_named_without_its_token(project: pathlib.Path) -> None:
    write(project, "config/lumina.toml", 'notify_webhooks = ["ftp://u:SeCrEt@h:21/SeCrEt"]\n')
    with pytest.raises(errors.SettingsError, match="notify_webhooks") as raised:
        settings.load_settings(project)
    assert "SeCrEt" not in str(raised.value)
    assert "ftp://h:21/…" in str(raised.value)


@pytest.mark.parametrize(
    ("variable", "value", "example"),
    [("LUMINA_VALUES", "notjson", "LUMINA_VALUES='{"), ("LUMINA_DRIFT_IGNORE", "replicas", '["')],
)
def test_a_list_or_object_variable_that_is_not_json_is_named(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, example: str
) -> None:
    """Issue 23: these gave pydantic-settings' raw error, naming a field, not the variable."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(errors.SettingsError) as caught:
        settings.load_settings(project)
    assert f"{variable} is not valid JSON" in caught.value.message
    assert example in caught.value.hint


def test_a_state_directory_that_is_a_file_is_named_by_every_command(
    project: pathlib.Path,
) -> None:
    (project / ".lumina").write_text("not a directory")
    for command in (["plan"], ["status"]):
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", *command, "--repo", str(project)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "is a file, not a directory" in result.stderr
        assert "Traceback" not in result.stderr


def test_the_tools_own_variables_are_not_unknown_settings(
    project: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``LUMINA_DAEMON=service nox -s bootstrap`` (the README's) and ``LUMINA_CACHE``
    (the local cluster's cache) are read by the tools around the reconciler: every
    ``lumina-reconcile`` command refused to start with them set."""
    monkeypatch.setenv("LUMINA_DAEMON", "service")
    monkeypatch.setenv("LUMINA_CACHE", "/somewhere")
    monkeypatch.setenv("LUMINA_KUBECTL", "/usr/bin/kubectl")
    assert settings.load_settings(project).namespace == "lumina"
