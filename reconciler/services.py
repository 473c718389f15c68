"""What a service plugin declares: the data the core acts on.

A plugin (built-in in ``plugins/`` or third-party) exposes one :class:`ServicePlugin`
through the ``lumina.plugins`` entry-point group. Plugins only declare; the core builds,
deploys and checks, and calls a plugin's hooks with what they may act through (a
:class:`PodCommand` bound to the service's running pod, never a cluster client). Paths
are relative to the repository root and use ``/``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping, Sequence
from typing import NewType, Protocol

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


class PodCommandError(Exception):
    """A command run in a pod did not succeed: it exited non-zero, or did not finish."""

    def __init__(self, argv: Sequence[str], exit_code: int | None, output: str) -> None:
        ended = f"exited {exit_code}" if exit_code is not None else "did not finish"
        super().__init__(f"`{' '.join(argv)}` {ended}: {output.strip()[-500:] or 'no output'}")
        self.argv = tuple(argv)
        self.exit_code = exit_code
        self.output = output


class PodCommand(Protocol):
    """Runs a command in the service's running container and returns its stdout.

    Raises :class:`PodCommandError` when the command fails or outlives ``timeout``.
    """

    def __call__(self, argv: Sequence[str], *, timeout: float = 120.0) -> str: ...


@dataclasses.dataclass(frozen=True)
class UpgradingService:
    """What a pre-upgrade hook is told: its service runs in ``pod``, and the coming
    upgrade will restart it (a new image, or changed config)."""

    name: ServiceName
    namespace: str
    pod: str
    #: The release revision the upgrade replaces (None when no revision is deployed).
    revision: int | None
    #: The image the upgrade deploys (the same as now when only config changes).
    image: str
    run: PodCommand


@dataclasses.dataclass(frozen=True)
class Prepared:
    """What a pre-upgrade hook did, when it made a backup the core may use later."""

    #: one line, logged and shown in the cycle's message
    said: str
    #: path, in the service's pod, of the backup the hook made: the trial start runs on
    #: a copy of it, and a rollback after the new pod migrated restores it
    backup: str = ""


#: A pre-upgrade action, run while the old pod still serves: returns one line saying
#: what it did (logged), or a :class:`Prepared` naming the backup it made; raises (any
#: exception) to refuse the upgrade, which then leaves the running release untouched.
#: Not called when no pod of the service runs.
PreUpgradeHook = Callable[[UpgradingService], str | Prepared]


@dataclasses.dataclass(frozen=True)
class TrialStart:
    """Opt-in: before an upgrade restarts the service, start its new image once beside
    the running release, on a copy of its data, and refuse the upgrade unless it
    becomes ready.

    The trial pod is the rendered Deployment's own pod template (its security context,
    resources, config and secrets) with three changes: ``data_volume`` is mounted
    read-only, so the live data is never written; an empty scratch volume is mounted
    at ``scratch_path``; and ``LUMINA_TRIAL_BACKUP`` names the backup the pre-upgrade
    hook just made (see :class:`Prepared`; empty when it made none), for whatever puts
    the copy in the scratch volume. That is ``prepare``, run first in an init container
    of the new image — or, when ``prepare`` is empty, the service's own start, which
    saves the trial a container start (about a second). ``env`` is set in the
    service's container (pointing it at the copy). The trial passes when the
    container's readiness probe answers within ``timeout_seconds``; a crash, an unready
    probe or a config error refuses the upgrade with the pod's diagnosis.
    """

    data_volume: str
    scratch_path: str
    prepare: tuple[str, ...] = ()
    env: Mapping[str, str] = dataclasses.field(default_factory=dict)
    timeout_seconds: float = 120.0


@dataclasses.dataclass(frozen=True)
class DatabaseCommands:
    """Commands, run in the service's pod, over the database it owns; each prints one
    JSON document. Used by ``lumina-reconcile db``.

    ``list`` prints a list of backups (``name``, ``size``, ``created``, ``label``), and
    ``restore`` (with a backup's name appended, or none for the newest) prints
    ``{"restored": backup, "previous": backup}``.
    """

    list: tuple[str, ...]
    restore: tuple[str, ...]
    #: run in a one-off pod of the *previous* image, with the service scaled to none,
    #: after a failed upgrade's pod may have migrated the data: the backup's path is
    #: appended; it restores that backup when the live data is not at the backup's
    #: schema any more, and prints ``{"restored": backup | null, "reason": str}``
    revert: tuple[str, ...] = ()
    #: prints one backup (its name appended) as ``{"backup": backup, "sha256": str}``
    #: followed by a newline and the file's bytes in base64 (``db backups pull``)
    export: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ServicePlugin:
    """Everything the reconciler needs to know to build and deploy one service.

    ``context`` is the docker build context and ``dockerfile`` the Dockerfile, both
    relative to the repository root (the Dockerfile may live outside the context).
    ``values_key`` is the key in the umbrella chart's values this service owns, where
    the reconciler sets ``<values_key>.image.repository`` and ``.tag``. A ``public``
    service is the one users reach: its ``<values_key>.service.nodePort`` is set from
    the ``node_port`` setting, so each environment of one cluster has its own port.
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
    pre_upgrade: PreUpgradeHook | None = None
    trial_start: TrialStart | None = None
    database: DatabaseCommands | None = None
    public: bool = False
    description: str = ""
