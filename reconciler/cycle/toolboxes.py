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
class Dependencies:
    """The side effects a cycle acts through, each typed by its port: only these."""

    images: ports.Images
    kube: ports.Kube
    releaser: ports.Releases
    store: ports.StateStore
    # The time module fits the Clock port as it is.
    clock: ports.Clock = dataclasses.field(default_factory=lambda: time)


def _counters() -> dict[str, int]:
    return {
        "docker_builds": 0,
        "docker_pushes": 0,
        "helm_upgrades": 0,
        "helm_reads": 0,
        "trial_starts": 0,
        "unexpected_errors": 0,
    }


@dataclasses.dataclass
class Runtime:
    """What a long-lived caller keeps from one cycle to the next (the daemon's, or a
    command's single cycle): counts of the work done, errors already told, listings."""

    counters: dict[str, int] = dataclasses.field(default_factory=_counters)
    #: unexpected errors already logged with their traceback (each is logged once)
    seen_errors: set[str] = dataclasses.field(default_factory=set)
    #: set by the daemon, whose watcher keeps it correct; one-shot commands walk the tree
    listings: worktree_reading.ListingMemo | None = None


@dataclasses.dataclass
class Toolbox:
    """What a cycle needs: the settings and plugins, its dependencies (the ports), and
    the runtime it updates; tests and commands build it once."""

    config: settings.Settings
    plugins: Sequence[services.ServicePlugin]
    deps: Dependencies
    metrics: metrics.Metrics
    hash_cache: worktree_reading.HashCache
    runtime: Runtime = dataclasses.field(default_factory=Runtime)
    build_log: Callable[[str, str], None] = lambda service, line: log.info("[%s] %s", service, line)
    #: plugins that failed to import: each cycle fails on the first, deploying nothing
    blocked_by: Sequence[errors.PluginError] = ()

    @property
    def state_dir(self) -> pathlib.Path:
        return self.config.repo_path(self.config.state_dir)

    def image(self, service: str) -> str:
        """The repository ``service``'s image is named under (local, or in the registry)."""
        plugin = next(plugin for plugin in self.plugins if plugin.name == service)
        return targets.image_name(self.config, plugin)


class Phases:
    """Seconds spent per phase of one cycle (plan, build, deploy, ...)."""

    def __init__(self, clock: ports.Clock = time) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = clock

    @contextlib.contextmanager
    def timed(self, name: str) -> Any:
        started = self._clock.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + self._clock.monotonic() - started
