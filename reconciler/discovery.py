"""Finding plugins: service plugins (``lumina.plugins``) and cluster providers
(``lumina.providers``) through their entry-point groups.

Built-ins are registered exactly like third-party plugins, in ``pyproject.toml``.
A plugin that fails to import, is of the wrong type, or declares something impossible
(a context outside the repository, a name already taken, a missing Dockerfile) is
reported as a :class:`PluginError` and skipped; the others keep working, because one
broken third-party package must never stop the daemon.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import pathlib
import re
from collections.abc import Callable, Iterable

from reconciler import errors, services
from reconciler.cluster import providers

SERVICE_GROUP = "lumina.plugins"
PROVIDER_GROUP = "lumina.providers"
_NAME_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclasses.dataclass(frozen=True)
class Discovered:
    """Usable plugins, and the problems of those that were skipped."""

    plugins: tuple[services.ServicePlugin, ...]
    problems: tuple[errors.PluginError, ...]
    #: the problems of plugins that failed to import: their service still exists in the
    #: repository and the chart, so a cycle without them would deploy it at the chart's
    #: default tag; they block every cycle instead (see Toolbox.blocked_by)
    unloadable: tuple[errors.PluginError, ...] = ()

    def by_name(self) -> dict[services.ServiceName, services.ServicePlugin]:
        return {plugin.name: plugin for plugin in self.plugins}


def _load_object(entry_point: importlib.metadata.EntryPoint) -> object:
    loaded = entry_point.load()
    # An entry point may name the declaration itself or a factory that returns it.
    if callable(loaded) and not isinstance(loaded, services.ServicePlugin):
        return loaded()
    return loaded


def _inside(repo: pathlib.Path, relative: str) -> bool:
    target = (repo / relative).resolve()
    return target == repo or target.is_relative_to(repo)


def validate(plugin: services.ServicePlugin, repo: pathlib.Path) -> None:
    """Raise :class:`PluginError` if ``plugin`` cannot work in ``repo``."""
    if not _NAME_PATTERN.fullmatch(plugin.name) or len(plugin.name) > 40:
        raise errors.PluginError(
            plugin.name, "name must be lowercase letters, digits and '-' (max 40)"
        )
    for field, relative in (("context", plugin.context), ("dockerfile", plugin.dockerfile)):
        if pathlib.PurePosixPath(relative).is_absolute() or not _inside(repo, relative):
            raise errors.PluginError(
                plugin.name,
                f"{field} {relative!r} lies outside the repository {repo}",
                hint="plugins may only build from inside the repository",
            )
    if not (repo / plugin.context).is_dir():
        raise errors.PluginError(plugin.name, f"build context {plugin.context!r} is missing")
    if not (repo / plugin.dockerfile).is_file():
        raise errors.PluginError(plugin.name, f"Dockerfile {plugin.dockerfile!r} is missing")
    for probe in (plugin.liveness, plugin.readiness):
        if not probe.path.startswith("/") or not 0 < probe.port < 65536:
            raise errors.PluginError(plugin.name, f"bad probe {probe}")


def discover_services(
    repo: pathlib.Path,
    *,
    entry_points: Callable[[], Iterable[importlib.metadata.EntryPoint]] | None = None,
) -> Discovered:
    """Every service plugin that loads and validates against ``repo``."""
    found = entry_points() if entry_points else importlib.metadata.entry_points(group=SERVICE_GROUP)
    usable: list[services.ServicePlugin] = []
    problems: list[errors.PluginError] = []
    unloadable: list[errors.PluginError] = []
    taken: set[str] = set()
    for entry_point in sorted(found, key=lambda ep: ep.name):
        try:
            plugin = _load_object(entry_point)
        except Exception as exc:  # a third-party import may raise anything
            failed = errors.PluginError(
                entry_point.name,
                f"failed to load {entry_point.value}: {type(exc).__name__}: {exc}",
                hint="fix or uninstall the package that provides it; until then no cycle "
                "deploys anything and the running release keeps serving",
            )
            problems.append(failed)
            unloadable.append(failed)
            continue
        if not isinstance(plugin, services.ServicePlugin):
            problems.append(
                errors.PluginError(
                    entry_point.name,
                    f"{entry_point.value} is a {type(plugin).__name__}, not a ServicePlugin",
                )
            )
            continue
        try:
            validate(plugin, repo)
        except errors.PluginError as exc:
            problems.append(exc)
            continue
        if plugin.name in taken:
            problems.append(
                errors.PluginError(
                    plugin.name,
                    f"name already taken by another plugin (duplicate from {entry_point.value})",
                )
            )
            continue
        taken.add(plugin.name)
        usable.append(plugin)
    return Discovered(plugins=tuple(usable), problems=tuple(problems), unloadable=tuple(unloadable))


def discover_providers() -> tuple[dict[str, providers.ClusterProvider], list[errors.PluginError]]:
    """Cluster providers by name, and the problems of those that could not load."""
    found: dict[str, providers.ClusterProvider] = {}
    problems: list[errors.PluginError] = []
    for entry_point in importlib.metadata.entry_points(group=PROVIDER_GROUP):
        try:
            provider = entry_point.load()()
        except Exception as exc:  # a third-party import may raise anything
            problems.append(errors.PluginError(entry_point.name, f"failed to load: {exc}"))
            continue
        if not isinstance(provider, providers.ClusterProvider):
            problems.append(
                errors.PluginError(entry_point.name, "does not implement ClusterProvider")
            )
            continue
        found[provider.name] = provider
    return found, problems
