"""Rotating a secret: fingerprints name what changed, checksums roll only its users."""

from __future__ import annotations

import pathlib
import stat

from reconciler import discovery
from reconciler.cluster import secrets
from reconciler.inputs import secret_inputs

JWT = "a-jwt-key-that-is-long-enough-to-be-real-0123456789"


def _plugins() -> tuple:
    return discovery.discover_services(pathlib.Path(__file__).parent.parent).plugins


def test_fingerprints_change_with_a_value_and_name_only_that_secret(
    tmp_path: pathlib.Path,
) -> None:
    source = tmp_path / "secrets.env"
    source.write_text(f"JWT_SECRET_KEY={JWT}\nOPENAI_API_KEY=sk-one\n")
    key = secret_inputs.fingerprint_key(tmp_path / "state")
    before = secret_inputs.fingerprints(_plugins(), source, key, environ={})
    assert secret_inputs.fingerprints(_plugins(), source, key, environ={}) == before
    source.write_text(f"JWT_SECRET_KEY={JWT}-rotated\nOPENAI_API_KEY=sk-one\n")
    after = secret_inputs.fingerprints(_plugins(), source, key, environ={})
    assert secret_inputs.changed(before, after) == ("backend-secrets",)
    assert secret_inputs.changed({}, after) == (), "unknown before: nothing to call rotated"
    for fingerprint in after.values():
        assert JWT not in fingerprint and "sk-one" not in fingerprint


def test_the_environment_counts_and_the_key_file_is_private(tmp_path: pathlib.Path) -> None:
    state_dir = tmp_path / "state"
    key = secret_inputs.fingerprint_key(state_dir)
    assert secret_inputs.fingerprint_key(state_dir) == key
    mode = stat.S_IMODE((state_dir / secret_inputs.KEY_FILE).stat().st_mode)
    assert mode == 0o600
    source = tmp_path / "absent.env"
    one = secret_inputs.fingerprints(_plugins(), source, key, environ={"OPENAI_API_KEY": "a"})
    two = secret_inputs.fingerprints(_plugins(), source, key, environ={"OPENAI_API_KEY": "b"})
    assert secret_inputs.changed(one, two) == ("chatbot-secrets",)


def test_pod_checksums_roll_exactly_the_deployments_that_read_the_secret() -> None:
    plugins = _plugins()
    key = b"k" * 32
    values = {"backend-secrets": {"JWT_SECRET_KEY": JWT}, "chatbot-secrets": {}}
    before = secrets.pod_checksums(plugins, secrets.ResolvedSecrets(values), key)
    rotated = {**values, "backend-secrets": {"JWT_SECRET_KEY": JWT + "-rotated"}}
    after = secrets.pod_checksums(plugins, secrets.ResolvedSecrets(rotated), key)
    assert set(before) == {"backend", "chatbot"}, "the frontend reads no Secret"
    assert before["backend"] != after["backend"]
    assert before["chatbot"] == after["chatbot"]
    other_key = secrets.pod_checksums(plugins, secrets.ResolvedSecrets(values), b"o" * 32)
    assert other_key["backend"] != before["backend"], "the checksum is keyed"


def test_an_upgrade_rolls_a_pod_over_its_secrets_only_when_they_rotated() -> None:
    plugins = _plugins()
    fresh = {"backend": "new-b", "chatbot": "new-c"}
    # A release from before checksums: other upgrades add none (nothing rolls for it).
    assert secrets.kept_unless_rotated(plugins, fresh, {}, set()) == {}
    assert secrets.kept_unless_rotated(plugins, fresh, {}, {"backend-secrets"}) == {
        "backend": "new-b"
    }
    deployed = {"backend": "old-b", "chatbot": "old-c"}
    assert secrets.kept_unless_rotated(plugins, fresh, deployed, set()) == deployed
    assert secrets.kept_unless_rotated(plugins, fresh, deployed, {"chatbot-secrets"}) == {
        "backend": "old-b",
        "chatbot": "new-c",
    }
