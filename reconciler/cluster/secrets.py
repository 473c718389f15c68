"""Secrets: from a local git-ignored source to Kubernetes Secrets, never anywhere else.

Who calls it: the cycle's upgrade action before every upgrade, and bootstrap. Each
plugin declares the keys it needs (:class:`reconciler.services.SecretSpec`). Values are
read from ``config/secrets.env`` (git-ignored), then the environment; a ``GENERATED``
key that has no value gets a strong random one, written back to ``secrets.env`` with
mode 0600. Values never appear in logs, state, exceptions or Helm values: errors name
the Secret and key only.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import pathlib
import secrets as random_secrets
from collections.abc import Iterable, Mapping

from reconciler import errors, services
from reconciler.cluster import kube, namespaces
from reconciler.inputs import secret_inputs

MANAGED_BY = namespaces.MANAGED_BY


class MissingSecretError(errors.PermanentError):
    """A required secret has no value in any source."""


@dataclasses.dataclass(frozen=True)
class ResolvedSecrets:
    """Values by Secret name and key. Its repr never shows a value."""

    values: Mapping[str, Mapping[str, str]]

    def __repr__(self) -> str:
        shown = {name: sorted(keys) for name, keys in self.values.items()}
        return f"ResolvedSecrets({shown})"


def _append(path: pathlib.Path, key: str, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(f"{key}={value}\n")
    os.chmod(path, 0o600)


def resolve(
    plugins: Iterable[services.ServicePlugin],
    source: pathlib.Path,
    environ: Mapping[str, str] | None = None,
    *,
    in_cluster: Mapping[str, Mapping[str, str]] | None = None,
) -> ResolvedSecrets:
    """Every declared secret's value, generating those that may be generated.

    A generated value already in the cluster (``in_cluster``, by Secret and key) is kept
    when the local source has none — a fresh clone must not rotate the JWT key and sign
    every user out.
    """
    env = os.environ if environ is None else environ
    local = secret_inputs.read_source(source)
    values: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for plugin in plugins:
        for spec in plugin.secrets:
            value = local.get(spec.key) or env.get(spec.key)
            if not value and spec.source is services.SecretSource.GENERATED:
                value = (in_cluster or {}).get(spec.secret, {}).get(spec.key)
            if not value and spec.source is services.SecretSource.GENERATED:
                value = random_secrets.token_urlsafe(48)
                _append(source, spec.key, value)
                local[spec.key] = value
            if value:
                values.setdefault(spec.secret, {})[spec.key] = value
            elif spec.required:
                missing.append(f"{spec.key} (Secret {spec.secret}, needed by {plugin.name})")
            else:
                values.setdefault(spec.secret, {})
    if missing:
        raise MissingSecretError(
            f"required secret missing: {', '.join(missing)}",
            hint=f"add it to {source} (git-ignored) or export it in the environment",
        )
    return ResolvedSecrets(values)


#: The Secret holding the key of the checksums in pod templates (never a value).
CHECKSUM_SECRET = "lumina-reconciler"  # noqa: S105 — the Secret's name
CHECKSUM_KEY = "checksum-key"


def checksum_key(cluster: kube.Connection, namespace: str) -> tuple[bytes, kube.Object | None]:
    """The key pod-template checksums are made with, kept in the cluster so every clone
    computes the same checksum for the same values (and a rotation rolls, nothing else).

    Reads only: where none exists yet, a new key comes with the Secret that keeps it,
    for the upgrade to apply once its namespace exists (on a first install it does not).
    """
    found = cluster.get("v1", "Secret", namespace, CHECKSUM_SECRET)
    data = (found or {}).get("data") or {}
    if CHECKSUM_KEY in data:
        return base64.b64decode(data[CHECKSUM_KEY]), None
    key = random_secrets.token_bytes(32)
    return key, {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": CHECKSUM_SECRET,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
        },
        "data": {CHECKSUM_KEY: base64.b64encode(key).decode()},
    }


def pod_checksums(
    plugins: Iterable[services.ServicePlugin], resolved: ResolvedSecrets, key: bytes
) -> dict[str, str]:
    """Per values key, a keyed checksum of every Secret the service uses: it goes into
    the pod template, so a changed value rolls exactly the Deployments that read it."""
    found: dict[str, str] = {}
    for plugin in plugins:
        names = sorted({spec.secret for spec in plugin.secrets})
        if not names:
            continue
        combined = {
            f"{name}/{field}": value
            for name in names
            for field, value in resolved.values.get(name, {}).items()
        }
        found[plugin.values_key] = secret_inputs.digest(key, combined)
    return found


def kept_unless_rotated(
    plugins: Iterable[services.ServicePlugin],
    fresh: Mapping[str, str],
    deployed: Mapping[str, str],
    rotated: set[str],
) -> dict[str, str]:
    """The checksums an upgrade sets: ``fresh`` for a service one of whose Secrets
    rotated, the ``deployed`` one for every other (none where none was deployed)."""
    chosen: dict[str, str] = {}
    for plugin in plugins:
        key = plugin.values_key
        if key in fresh and rotated & {spec.secret for spec in plugin.secrets}:
            chosen[key] = fresh[key]
        elif key in deployed:
            chosen[key] = deployed[key]
    return chosen


def manifests(resolved: ResolvedSecrets, namespace: str) -> list[kube.Object]:
    """Secret objects for server-side apply."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": MANAGED_BY},
            },
            "data": {
                key: base64.b64encode(value.encode()).decode()
                for key, value in sorted(data.items())
            },
        }
        for name, data in sorted(resolved.values.items())
    ]


def read_generated(
    cluster: kube.Connection, plugins: Iterable[services.ServicePlugin], namespace: str
) -> dict[str, dict[str, str]]:
    """Values of generated secrets that already exist in the cluster."""
    found: dict[str, dict[str, str]] = {}
    for name in sorted(
        {
            spec.secret
            for plugin in plugins
            for spec in plugin.secrets
            if spec.source is services.SecretSource.GENERATED
        }
    ):
        secret = cluster.get("v1", "Secret", namespace, name)
        data = (secret or {}).get("data") or {}
        found[name] = {key: base64.b64decode(value).decode() for key, value in data.items()}
    return found


def apply(cluster: kube.Connection, resolved: ResolvedSecrets, namespace: str) -> list[str]:
    """Create or update the Secrets; returns their names."""
    applied = []
    for body in manifests(resolved, namespace):
        cluster.apply(body)
        applied.append(str(body["metadata"]["name"]))
    return applied
