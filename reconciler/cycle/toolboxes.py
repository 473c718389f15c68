"""The adapters one reconcile cycle acts through, gathered in one object.

Who builds it: :mod:`reconciler.cli.wiring` for commands and the daemon, tests and
benchmarks for their own setups; the cycle's observe step and actions act through it.
Holding every side effect here keeps the deciding code pure; the adapters are typed by
what the cycle calls (:mod:`reconciler.cycle.ports`), so tests pass in-memory fakes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from reconciler import errors, services, settings
from reconciler.cycle import metrics, ports
from reconciler.inputs import worktree_reading
from reconciler.releasing import targets

log = logging.getLogger("lumina.reconcile")


@dataclasses.dataclass
class Toolbox:
    """The adapters a cycle acts through; tests and commands build it once."""

    config: settings.Settings
    plugins: Sequence[services.ServicePlugin]
    images: ports.Images
    kube: ports.Kube
    releaser: ports.Releases
    store: ports.StateStore
    metrics: metrics.Metrics
    hash_cache: worktree_reading.HashCache
    #: set by the daemon, whose watcher keeps it correct; one-shot commands walk the tree
    listings: worktree_reading.ListingMemo | None = None
    build_log: Callable[[str, str], None] = lambda service, line: log.info("[%s] %s", service, line)
    counters: dict[str, int] = dataclasses.field(
        default_factory=lambda: {
            "docker_builds": 0,
            "docker_pushes": 0,
            "helm_upgrades": 0,
            "helm_reads": 0,
            "trial_starts": 0,
            "unexpected_errors": 0,
        }
    )
    #: plugins that failed to import: each cycle fails on the first, deploying nothing
    blocked_by: Sequence[errors.PluginError] = ()
    #: unexpected errors already logged with their traceback (each is logged once)
    seen_errors: set[str] = dataclasses.field(default_factory=set)

    @property
    def state_dir(self) -> pathlib.Path:
        return self.config.repo_path(self.config.state_dir)

    def image(self, service: str) -> str:
        """The repository ``service``'s image is named under (local, or in the registry)."""
        plugin = next(plugin for plugin in self.plugins if plugin.name == service)
        return targets.image_name(self.config, plugin)


class Phases:
    """Seconds spent per phase of one cycle (plan, build, deploy, ...)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Any:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started
