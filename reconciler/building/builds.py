"""Building images with the Docker engine the cluster uses.

Who calls it: the cycle's build action, once per service to rebuild, up to
``build_concurrency`` at a time, and its observe step (which images exist). Only this
module and :mod:`reconciler.building.registries` (its pushes) import the docker SDK
for engine calls. The engine is the one the cluster provider names
(``docker_env``); the context is the tar from :mod:`reconciler.building.packing`, so the image
holds exactly what the digest covers. An image already present under its digest tag is
never built again — also when it is only there under another repository name (the
plugin's local name, before a registry was set): the same digest is the same image, so
it is tagged, not rebuilt. Build output is streamed line by line to a callback (the log,
a progress display).

A Dockerfile that asks for BuildKit (``RUN --mount=type=cache``, so that npm's and
Next's caches last between builds) is built through it
(:mod:`reconciler.building.buildkit`, the docker CLI) when the engine and a CLI support
it; otherwise on the classic API with those cache mounts dropped, and a log line saying
why, once per client. Other Dockerfiles build on the classic API, which BuildKit does not
beat on a one-layer rebuild (and loses to on a busy machine, see :func:`buildkit.wanted`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pathlib
import posixpath
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from reconciler import errors, services
from reconciler.building import buildkit, packing
from reconciler.inputs import contexts

log = logging.getLogger("lumina.building")
LogLine = Callable[[str, str], None]
_STEP = re.compile(r"^Step \d+/\d+ : .*")
#: what names each client's engine to a docker CLI (connect's environment, completed)
_environments: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()
_builders: weakref.WeakKeyDictionary[Any, buildkit.Cli | buildkit.Unusable] = (
    weakref.WeakKeyDictionary()
)
#: clients whose fallback to the classic builder was logged
_fallbacks_told: weakref.WeakSet[Any] = weakref.WeakSet()
_choosing = threading.Lock()


class BuildError(errors.PermanentError):
    """The image did not build; ``step`` is the Dockerfile step that failed."""

    outcome = "build-failed"
    of_inputs = True

    def __init__(self, service: str, message: str, step: str | None, log_tail: list[str]) -> None:
        where = f" at {step!r}" if step else ""
        hint = "fix the Dockerfile or sources; the running release is untouched"
        if "no space left on device" in message.lower():
            hint = "free disk space for the Docker engine; the running release is untouched"
        super().__init__(f"build of {service} failed{where}: {message}", hint=hint)
        self.service = service
        self.step = step
        self.log_tail = log_tail


class EngineUnavailableError(errors.TemporaryError):
    """The Docker engine does not answer."""


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    service: str
    image: str
    tag: str
    reused: bool
    seconds: float

    @property
    def reference(self) -> str:
        return f"{self.image}:{self.tag}"


def connect(environment: Mapping[str, str]) -> docker.DockerClient:
    """A client of the engine ``environment`` names (DOCKER_HOST …), checked alive."""
    try:
        client = docker.from_env(environment=dict(environment), timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(
            f"the Docker engine does not answer: {exc}",
            hint="start it (tools/ensure-docker.sh) and the next cycle retries",
            retry_after=10,
        ) from exc
    _environments[client] = _engine_environment(environment)
    return client


def _engine_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """What names the engine :func:`connect` reached, for a docker CLI: the variables the
    SDK read (``from_env`` reads this process's environment when given none), so that
    neither a later DOCKER_HOST nor the CLI's current context sends a build elsewhere."""
    source = environment or os.environ
    engine = {key: source[key] for key in buildkit.ENGINE_VARIABLES[:3] if key in source}
    engine.setdefault("DOCKER_HOST", "unix:///var/run/docker.sock")  # the SDK's default too
    return {**environment, **engine}


def builder(client: docker.DockerClient) -> buildkit.Cli | buildkit.Unusable:
    """How ``client``'s builds run: the BuildKit CLI, or why the classic API instead."""
    with _choosing:
        if client not in _builders:
            try:
                version = client.version()
            except docker.errors.DockerException as exc:
                raise EngineUnavailableError(f"the Docker engine does not answer: {exc}") from exc
            chosen = buildkit.find(
                _environments.get(client, {}),
                engine_api=str(version.get("ApiVersion", "")),
                engine_os=str(version.get("Os", "")),
            )
            if isinstance(chosen, buildkit.Cli):
                log.info("Dockerfiles with cache mounts build with BuildKit through %s", chosen)
            _builders[client] = chosen
        return _builders[client]


def _builder_for(
    client: docker.DockerClient, plugin: services.ServicePlugin, source: contexts.Source
) -> buildkit.Cli | None:
    """The BuildKit CLI when ``plugin``'s Dockerfile wants one and it is usable, else None
    (the classic API), telling once per client why a Dockerfile that wants it goes without."""
    if not buildkit.wanted(source.raw(posixpath.normpath(plugin.dockerfile)) or b""):
        return None
    chosen = builder(client)
    if isinstance(chosen, buildkit.Cli):
        return chosen
    with _choosing:
        if client not in _fallbacks_told:
            _fallbacks_told.add(client)
            log.warning(
                "building with the classic builder, without cache mounts: %s", chosen.reason
            )
    return None


def local_data_root(client: docker.DockerClient) -> pathlib.Path | None:
    """Where the engine keeps images, when it runs on this machine (a unix socket)."""
    if not str(client.api.base_url).startswith("http+docker://localhost"):
        return None  # a remote engine's disk is not ours to measure
    try:
        root = client.info().get("DockerRootDir")
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"the Docker engine does not answer: {exc}") from exc
    return pathlib.Path(root) if root and pathlib.Path(root).exists() else None


def image_exists(client: docker.DockerClient, reference: str) -> bool:
    try:
        client.images.get(reference)
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"the Docker engine does not answer: {exc}") from exc
    return True


def _tag_existing(client: docker.DockerClient, existing: str, image: str, tag: str) -> bool:
    """Give ``existing`` the name ``image:tag`` too; False when ``existing`` is absent."""
    try:
        return bool(client.images.get(existing).tag(image, tag))
    except docker.errors.ImageNotFound:
        return False
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"the Docker engine does not answer: {exc}") from exc


def _build_blocking(
    client: docker.DockerClient,
    plugin: services.ServicePlugin,
    inputs: contexts.ServiceInputs,
    source: contexts.Source,
    log: LogLine,
    *,
    reference: str,
) -> None:
    context, dockerfile = packing.pack(
        plugin, inputs, source, dockerfile_filter=buildkit.without_cache_mounts
    )
    step: str | None = None
    tail: list[str] = []
    try:
        stream: Any = client.api.build(
            fileobj=context,
            custom_context=True,
            dockerfile=dockerfile,
            tag=reference,
            buildargs=dict(plugin.build_args),
            labels={"io.lumina.service": plugin.name, "io.lumina.digest": inputs.digest},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                for line in str(chunk["stream"]).splitlines():
                    if not line.strip():
                        continue
                    if _STEP.match(line):
                        step = line
                    tail = [*tail[-19:], line]
                    log(plugin.name, line)
            elif "error" in chunk:
                message = str(chunk.get("error", "")).strip()
                log(plugin.name, f"ERROR {message}")
                raise BuildError(plugin.name, message, step, tail)
    except docker.errors.APIError as exc:
        raise BuildError(plugin.name, str(exc.explanation or exc), step, tail) from exc
    except docker.errors.DockerException as exc:
        raise EngineUnavailableError(f"the Docker engine failed during a build: {exc}") from exc
    finally:
        context.close()


async def _build_with_buildkit(
    cli: buildkit.Cli,
    client: docker.DockerClient,
    plugin: services.ServicePlugin,
    inputs: contexts.ServiceInputs,
    source: contexts.Source,
    *,
    log: LogLine,
    reference: str,
) -> None:
    context, dockerfile = await asyncio.to_thread(packing.pack, plugin, inputs, source)
    try:
        failed = await buildkit.build(
            cli,
            context,
            dockerfile=dockerfile,
            reference=reference,
            labels={"io.lumina.service": plugin.name, "io.lumina.digest": inputs.digest},
            build_args=dict(plugin.build_args),
            environment=_environments.get(client, _engine_environment({})),
            log=lambda line: log(plugin.name, line),
        )
    finally:
        context.close()
    if failed is None:
        return
    if failed.engine_down:
        raise EngineUnavailableError(f"the Docker engine failed during a build: {failed.message}")
    raise BuildError(plugin.name, failed.message, failed.step, failed.tail)


async def build(
    client: docker.DockerClient,
    plugin: services.ServicePlugin,
    inputs: contexts.ServiceInputs,
    source: contexts.Source,
    *,
    log: LogLine,
    timeout: float,
    image: str | None = None,
) -> BuiltImage:
    """Build ``plugin``'s image as ``image`` (default: the plugin's own name) tagged with
    its digest, unless it already exists under either name."""
    image = image or plugin.image
    reference = f"{image}:{inputs.tag}"
    started = time.monotonic()
    if await asyncio.to_thread(image_exists, client, reference):
        return BuiltImage(plugin.name, image, inputs.tag, True, 0.0)
    if image != plugin.image and await asyncio.to_thread(
        _tag_existing, client, f"{plugin.image}:{inputs.tag}", image, inputs.tag
    ):
        return BuiltImage(plugin.name, image, inputs.tag, True, 0.0)
    chosen = await asyncio.to_thread(_builder_for, client, plugin, source)
    if chosen is not None:
        try:
            await asyncio.wait_for(
                _build_with_buildkit(
                    chosen, client, plugin, inputs, source, log=log, reference=reference
                ),
                timeout,
            )
        except TimeoutError as exc:
            raise BuildError(plugin.name, f"timed out after {timeout:.0f}s", None, []) from exc
        return BuiltImage(plugin.name, image, inputs.tag, False, time.monotonic() - started)
    loop = asyncio.get_running_loop()

    def threadsafe_log(service: str, line: str) -> None:
        loop.call_soon_threadsafe(log, service, line)

    try:
        await asyncio.wait_for(
            asyncio.to_thread(
                _build_blocking, client, plugin, inputs, source, threadsafe_log, reference=reference
            ),
            timeout,
        )
    except TimeoutError as exc:
        raise BuildError(plugin.name, f"timed out after {timeout:.0f}s", None, []) from exc
    return BuiltImage(plugin.name, image, inputs.tag, False, time.monotonic() - started)
