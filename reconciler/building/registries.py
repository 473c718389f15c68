"""Image delivery through a registry: ask whether a tag is there, push what is not.

Who calls it: the cycle's observe step and build action, when the settings name a registry
(``LUMINA_REGISTRY=host:port/prefix``). Images are then called
``<registry>/<service>:<digest tag>``; the cluster's runtime pulls them, so nothing is
loaded into its nodes. Whether the registry already holds a tag is asked of the
registry itself (through the Docker engine's distribution endpoint, which speaks the
registry's v2 API with the engine's own TLS and auth handling), never inferred from
local images: another clone, another machine or CI may have pushed it. Pushes stream
their progress to the build log; an error line in the stream becomes a
:class:`PushError`. Optional credentials come from the git-ignored secrets file or the
environment and are handed to the engine per request, never logged or kept.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Mapping
from typing import Any

import docker.errors
import requests.exceptions

from reconciler import errors
from reconciler.inputs import secret_inputs

LogLine = Callable[[str, str], None]
USERNAME_KEY = "LUMINA_REGISTRY_USERNAME"
PASSWORD_KEY = "LUMINA_REGISTRY_PASSWORD"  # noqa: S105 — a variable's name, not a value
#: A registry that failed is asked again after this long: it may only be restarting.
RETRY_SECONDS = 30.0


class RegistryError(errors.TemporaryError):
    """The registry could not be asked, or refused an image.

    Reported like a failed build — the release is not touched — but retried later
    instead of waiting for a new commit, since the fix is usually outside the
    repository (start the registry, fix the credentials).
    """

    outcome = "push-failed"

    def __init__(self, message: str, *, hint: str) -> None:
        super().__init__(message, hint=hint, retry_after=RETRY_SECONDS)


class PushError(RegistryError):
    """Pushing ``reference`` failed; the running release is untouched."""

    def __init__(self, service: str, reference: str, message: str) -> None:
        super().__init__(
            f"push of {service} to {reference} failed: {message}",
            hint="check that the registry runs and accepts pushes (credentials: "
            f"{USERNAME_KEY} and {PASSWORD_KEY} in the secrets file); the running "
            "release is untouched",
        )
        self.service = service
        self.reference = reference


@dataclasses.dataclass(frozen=True)
class Credentials:
    """A registry account. Its repr never shows the password."""

    username: str
    password: str = dataclasses.field(repr=False)

    def auth_config(self) -> dict[str, str]:
        """What the Docker engine takes per request (``X-Registry-Auth``)."""
        return {"username": self.username, "password": self.password}


def credentials(
    source: pathlib.Path, environ: Mapping[str, str] | None = None
) -> Credentials | None:
    """The registry account from ``source`` (the secrets file), else the environment.

    None when neither names one: a local registry needs none.
    """
    env = os.environ if environ is None else environ
    local = secret_inputs.read_source(source)
    username = local.get(USERNAME_KEY) or env.get(USERNAME_KEY)
    password = local.get(PASSWORD_KEY) or env.get(PASSWORD_KEY)
    if not username and not password:
        return None
    if not username or not password:
        missing = PASSWORD_KEY if username else USERNAME_KEY
        raise errors.SettingsError(
            f"registry credentials are incomplete: {missing} has no value",
            hint=f"set both {USERNAME_KEY} and {PASSWORD_KEY} in {source} (git-ignored) "
            "or the environment, or neither",
        )
    return Credentials(username, password)


def repository(registry: str, service: str) -> str:
    """Where ``service``'s images live in ``registry`` (``host:port/prefix``)."""
    return f"{registry.rstrip('/')}/{service}"


#: how the engine words a registry that accepted the connection and never answered
_TIMEOUT_MARKERS = ("deadline exceeded", "client.timeout", "timeout awaiting", "i/o timeout")


def _engine_said(said: str) -> str:
    """The engine's words, led by what they mean when a registry hung: the engine's own
    Go error ("context deadline exceeded") does not say it to a user."""
    if any(marker in said.lower() for marker in _TIMEOUT_MARKERS):
        return f"the registry did not answer in time: {said}"
    return said


def _auth(account: Credentials | None) -> dict[str, str] | None:
    return account.auth_config() if account else None


def has(client: Any, reference: str, account: Credentials | None) -> bool:
    """Whether the registry holds ``reference`` (``repository:tag``): the registry's
    answer, asked through the engine. Blocking; raises :class:`RegistryError` when the
    registry cannot answer (down, refusing the credentials)."""
    try:
        client.api.inspect_distribution(reference, auth_config=_auth(account))
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        raise RegistryError(
            f"cannot ask the registry whether it has {reference}: "
            + _engine_said(str(exc.explanation or exc)),
            hint="start the registry (or fix LUMINA_REGISTRY and its credentials); "
            "the running release is untouched",
        ) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise RegistryError(
            f"cannot ask the registry whether it has {reference}: the Docker engine failed "
            f"or did not answer in time: {exc}",
            hint="start the Docker engine (tools/ensure-docker.sh)",
        ) from exc
    return True


def _progress_line(chunk: Mapping[str, Any]) -> str | None:
    """The line worth logging for one stream chunk, if any.

    Byte-progress chunks ("Pushing" with a bar) would flood the log, one per few
    kilobytes: only each layer's state changes and the final digest are shown.
    """
    status = str(chunk.get("status") or "").strip()
    if not status or status == "Pushing":
        return None
    layer = chunk.get("id")
    return f"{layer}: {status}" if layer else status


def push(
    client: Any, service: str, reference: str, account: Credentials | None, log: LogLine
) -> str:
    """Push ``reference`` (already tagged locally); returns the manifest digest the
    registry stored. Blocking; raises :class:`PushError`."""
    name, _, tag = reference.rpartition(":")
    digest = ""
    try:
        stream = client.api.push(
            name, tag=tag, stream=True, decode=True, auth_config=_auth(account)
        )
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail") or {}
                message = _engine_said(str(detail.get("message") or chunk["error"]).strip())
                log(service, f"ERROR {message}")
                raise PushError(service, reference, message)
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = str(aux["Digest"])
            line = _progress_line(chunk)
            if line:
                log(service, line)
    except docker.errors.APIError as exc:
        raise PushError(service, reference, _engine_said(str(exc.explanation or exc))) from exc
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise PushError(
            service, reference, f"the Docker engine failed or did not answer in time: {exc}"
        ) from exc
    if not digest:
        # The engine ends every successful push with the stored digest; without it the
        # registry may not hold the image, and a pod would fail to pull it.
        raise PushError(service, reference, "the engine reported no stored digest")
    return digest
