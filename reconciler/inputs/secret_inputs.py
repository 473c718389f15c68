"""The local secret sources as an input: fingerprints that change when a value does.

Who calls it: the cycle's observe step (is a secret rotated?) and
:mod:`reconciler.cluster.secrets` (the values themselves). A fingerprint is an HMAC of
a Secret's locally given values under a random key kept beside the state (mode 0600),
so the state file shows *that* a secret changed, by name, and never anything that
helps guess its value. Values the local source does not give (a generated key kept
only in the cluster) do not take part: they change only through this tool.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pathlib
import secrets as random_secrets
from collections.abc import Iterable, Mapping

import dotenv
from dotenv import parser as dotenv_parser

from reconciler import errors, services

KEY_FILE = "secrets-fingerprint.key"


def read_source(path: pathlib.Path) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (empty values dropped); {} when absent."""
    if not path.exists():
        return {}
    with open(path, encoding="utf-8", errors="replace") as stream:
        for binding in dotenv_parser.parse_stream(stream):
            if binding.error:
                # dotenv would drop it with a warning that names no file: a secret the
                # user meant to give would then be missing, or generated, unsaid.
                raise errors.SettingsError(
                    f"{path}: line {binding.original.line} is not KEY=value",
                    hint="fix or delete that line (quote a value with spaces); "
                    "the file is git-ignored",
                )
    return {key: value for key, value in dotenv.dotenv_values(path).items() if value}


def fingerprint_key(state_dir: pathlib.Path) -> bytes:
    """The local HMAC key, made on first use."""
    path = state_dir / KEY_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = random_secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def digest(key: bytes, values: Mapping[str, str]) -> str:
    """A keyed digest of ``values`` (key order does not matter)."""
    message = "\0".join(f"{name}={values[name]}" for name in sorted(values))
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:32]


def fingerprints(
    plugins: Iterable[services.ServicePlugin],
    source: pathlib.Path,
    key: bytes,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Per Secret name, the fingerprint of the values the local source or the
    environment give for it."""
    env = os.environ if environ is None else environ
    local = read_source(source)
    given: dict[str, dict[str, str]] = {}
    for plugin in plugins:
        for spec in plugin.secrets:
            found = given.setdefault(spec.secret, {})
            value = local.get(spec.key) or env.get(spec.key)
            if value:
                found[spec.key] = value
    return {name: digest(key, values) for name, values in sorted(given.items())}


def changed(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[str, ...]:
    """Names of the Secrets whose fingerprint differs (none when ``before`` is unknown)."""
    if not before:
        return ()
    return tuple(
        sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    )
