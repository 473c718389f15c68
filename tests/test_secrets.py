"""Secret values come from the git-ignored source or the environment, and go nowhere else."""

from __future__ import annotations

import base64
import pathlib
import stat

import pytest

from reconciler import errors, services
from reconciler.cluster import secrets


def _plugin(*specs: services.SecretSpec) -> services.ServicePlugin:
    return services.ServicePlugin(
        name=services.ServiceName("backend"),
        context="services/backend",
        dockerfile="services/backend/Dockerfile",
        image="lumina/backend",
        values_key="backend",
        liveness=services.Probe("/", 1),
        readiness=services.Probe("/", 1),
        secrets=specs,
    )


JWT = services.SecretSpec(
    "backend-secrets", "JWT_SECRET_KEY", source=services.SecretSource.GENERATED
)
SMTP = services.SecretSpec("backend-secrets", "SMTP_PASSWORD", required=False)
API = services.SecretSpec("chatbot-secrets", "OPENAI_API_KEY", required=True)


def test_generated_secret_is_kept_private_and_reused(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "config" / "secrets.env"
    first = secrets.resolve([_plugin(JWT, SMTP)], source, environ={})
    value = first.values["backend-secrets"]["JWT_SECRET_KEY"]
    assert len(value) >= 48
    assert stat.S_IMODE(source.stat().st_mode) == 0o600
    second = secrets.resolve([_plugin(JWT, SMTP)], source, environ={})
    assert second.values["backend-secrets"]["JWT_SECRET_KEY"] == value
    assert value not in repr(second)


def test_source_file_wins_over_environment(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "secrets.env"
    source.write_text("SMTP_PASSWORD=from-file\n")
    resolved = secrets.resolve([_plugin(SMTP)], source, environ={"SMTP_PASSWORD": "from-env"})
    assert resolved.values["backend-secrets"]["SMTP_PASSWORD"] == "from-file"


def test_missing_required_secret_is_named_without_values(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "secrets.env"
    source.write_text("SMTP_PASSWORD=hunter2-not-shown\n")
    with pytest.raises(secrets.MissingSecretError) as caught:
        secrets.resolve([_plugin(SMTP, API)], source, environ={})
    message = str(caught.value)
    assert "OPENAI_API_KEY" in message and "chatbot-secrets" in message
    assert "hunter2" not in message


def test_manifests_hold_base64_data_and_a_restricted_namespace(tmp_path: pathlib.Path) -> None:
    resolved = secrets.ResolvedSecrets({"backend-secrets": {"JWT_SECRET_KEY": "s3cret"}})
    [manifest] = secrets.manifests(resolved, "lumina")
    assert manifest["metadata"] == {
        "name": "backend-secrets",
        "namespace": "lumina",
        "labels": {"app.kubernetes.io/managed-by": "lumina-reconcile"},
    }
    assert base64.b64decode(manifest["data"]["JWT_SECRET_KEY"]) == b"s3cret"


def test_a_generated_secret_already_in_the_cluster_is_kept(tmp_path: pathlib.Path) -> None:
    """A fresh clone (no secrets.env) must not rotate the JWT key of a running stack."""
    source = tmp_path / "config" / "secrets.env"
    resolved = secrets.resolve(
        [_plugin(JWT, SMTP)],
        source,
        environ={},
        in_cluster={"backend-secrets": {"JWT_SECRET_KEY": "the-live-key"}},
    )
    assert resolved.values["backend-secrets"]["JWT_SECRET_KEY"] == "the-live-key"
    assert not source.exists(), "a value read from the cluster is not written anywhere"


def test_a_bad_line_in_the_secrets_file_is_named_not_dropped(tmp_path: pathlib.Path) -> None:
    """Issue 23: dotenv dropped such a line with a warning that named no file, and a
    secret the user meant to give went missing (or was generated) without a word."""
    source = tmp_path / "secrets.env"
    source.write_text("SMTP_PASSWORD=fine\nJWT_SECRET_KEY hunter2\n")
    with pytest.raises(errors.SettingsError) as caught:
        secrets.resolve([_plugin(JWT, SMTP)], source, environ={})
    assert f"{source}: line 2 is not KEY=value" in caught.value.message
    assert "hunter2" not in str(caught.value)
