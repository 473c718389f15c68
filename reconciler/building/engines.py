"""The images port's real adapter: the Docker engine the cluster uses, a registry when
one is set, and the provider's way into the nodes.

Who builds it: :mod:`reconciler.cli.wiring`, once per toolbox; the cycle's observe step
and its build and deliver actions call it through :class:`reconciler.cycle.ports.Images`.
The engine is connected on first use, not at assembly: ``plan`` and a cycle with nothing
to build never start a docker client.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading
from collections.abc import Callable, Mapping
from typing import Any

from reconciler import services, settings
from reconciler.building import builds, registries
from reconciler.inputs import contexts


class DockerImages:
    """Images in the local engine (no registry) or in ``config.registry``."""

    def __init__(
        self,
        config: settings.Settings,
        *,
        docker_env: Callable[[], Mapping[str, str]],
        load_images: Callable[[list[str]], None],
    ) -> None:
        self._config = config
        self._docker_env = docker_env
        self._load_images = load_images
        self._client: Any = None
        # exists() runs in several threads at once; one of them connects.
        self._connecting = threading.Lock()

    def _docker(self) -> Any:
        with self._connecting:
            if self._client is None:
                self._client = builds.connect(self._docker_env())
            return self._client

    def _account(self) -> registries.Credentials | None:
        # Read on every use: a credential fixed in the secrets file counts next cycle.
        return registries.credentials(self._config.repo_path(self._config.secrets_file))

    def data_root(self) -> pathlib.Path | None:
        return builds.local_data_root(self._docker())

    def exists(self, reference: str) -> bool:
        if self._config.registry:
            return registries.has(self._docker(), reference, self._account())
        return builds.image_exists(self._docker(), reference)

    async def build(
        self,
        plugin: services.ServicePlugin,
        inputs: contexts.ServiceInputs,
        source: contexts.Source,
        *,
        image: str,
        log: builds.LogLine,
    ) -> builds.BuiltImage:
        client = await asyncio.to_thread(self._docker)
        return await builds.build(
            client,
            plugin,
            inputs,
            source,
            log=log,
            timeout=self._config.build_timeout_seconds,
            image=image,
        )

    def push(self, service: str, reference: str, log: builds.LogLine) -> str:
        return registries.push(self._docker(), service, reference, self._account(), log)

    def deliver(self, references: list[str]) -> None:
        self._load_images(references)
