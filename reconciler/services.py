"""What a service plugin declares: the data the core acts on.

A plugin (built-in in ``plugins/`` or third-party) exposes one :class:`ServicePlugin`
through the ``lumina.plugins`` entry-point group. Plugins only declare; the core builds,
deploys and checks. Paths are relative to the repository root and use ``/``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import NewType

ServiceName = NewType("ServiceName", str)


class SecretSource(enum.StrEnum):
    """Where the value of a declared secret may come from."""

    #: ``config/secrets.env`` (git-ignored) or the process environment, in that order.
    LOCAL = "local"
    #: Generated once (a strong random value) and kept in ``config/secrets.env``.
    GENERATED = "generated"


@dataclasses.dataclass(frozen=True)
class Probe:
    """An HTTP health probe the chart wires into the container."""

    path: str
    port: int


@dataclasses.dataclass(frozen=True)
class SecretSpec:
    """One key of a Kubernetes Secret the service needs.

    ``secret`` is the Secret's name, ``key`` both the key in it and the variable name
    looked up in the local source.
    """

    secret: str
    key: str
    required: bool = True
    source: SecretSource = SecretSource.LOCAL
    description: str = ""


@dataclasses.dataclass(frozen=True)
class DeployedService:
    """What a post-deploy hook is told about the service it checks."""

    name: ServiceName
    image: str
    namespace: str


#: A post-deploy check: raises (any exception) to report the deploy as unhealthy.
PostDeployHook = Callable[[DeployedService], None]


@dataclasses.dataclass(frozen=True)
class ServicePlugin:
    """Everything the reconciler needs to know to build and deploy one service.

    ``context`` is the docker build context and ``dockerfile`` the Dockerfile, both
    relative to the repository root (the Dockerfile may live outside the context).
    ``values_key`` is the key in the umbrella chart's values this service owns, where
    the reconciler sets ``<values_key>.image.repository`` and ``.tag``.
    """

    name: ServiceName
    context: str
    dockerfile: str
    image: str
    values_key: str
    liveness: Probe
    readiness: Probe
    build_args: Mapping[str, str] = dataclasses.field(default_factory=dict)
    secrets: tuple[SecretSpec, ...] = ()
    post_deploy: PostDeployHook | None = None
    description: str = ""
