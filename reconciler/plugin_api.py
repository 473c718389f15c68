"""Everything a plugin may use, in one module: the only ``reconciler`` import plugins make.

Service plugins declare data (:class:`ServicePlugin` and its parts); cluster providers
implement :class:`ClusterProvider` and may raise the two error roots. Keeping the
surface here means the core can be reorganised without breaking a third-party plugin,
and ``nox -s lint`` checks that ``plugins/`` reaches nothing else.
"""

from __future__ import annotations

from reconciler.cluster.kube import Kube as KubeConnection
from reconciler.cluster.providers import (
    APP_NODE_PORT,
    PORT_FORWARD,
    ClusterInfo,
    ClusterProvider,
    ConfigurableProvider,
    WipeableProvider,
    node_port_url,
    port_forward,
)
from reconciler.errors import LuminaError, PermanentError, TemporaryError
from reconciler.services import (
    DatabaseCommands,
    DeployedService,
    PodCommand,
    PodCommandError,
    PostDeployHook,
    Prepared,
    PreUpgradeHook,
    Probe,
    SecretSource,
    SecretSpec,
    ServiceName,
    ServicePlugin,
    TrialStart,
    UpgradingService,
)
from reconciler.settings import Settings

__all__ = [
    "APP_NODE_PORT",
    "PORT_FORWARD",
    "ClusterInfo",
    "ClusterProvider",
    "ConfigurableProvider",
    "DatabaseCommands",
    "DeployedService",
    "KubeConnection",
    "LuminaError",
    "PermanentError",
    "PodCommand",
    "PodCommandError",
    "PostDeployHook",
    "PreUpgradeHook",
    "Prepared",
    "Probe",
    "SecretSource",
    "SecretSpec",
    "ServiceName",
    "ServicePlugin",
    "Settings",
    "TemporaryError",
    "TrialStart",
    "UpgradingService",
    "WipeableProvider",
    "node_port_url",
    "port_forward",
]
