"""Assembling the adapters a command needs from settings: provider, kube, helm, docker.

Who calls it: the CLI commands. Provider choice follows the spec: the one the
``cluster`` setting names, else minikube where it exists, then kind, else the local
from-source cluster.
"""

from __future__ import annotations

import os
import pathlib
import shutil

from reconciler import discovery, errors, services, settings
from reconciler.building import engines
from reconciler.cluster import app_urls, kube, providers
from reconciler.cycle import metrics, state, toolboxes
from reconciler.inputs import worktree_reading
from reconciler.releasing import helm

AUTO_ORDER = ("minikube", "kind", "local")


def choose_provider(config: settings.Settings) -> providers.ClusterProvider:
    chosen = _find_provider(config)
    if isinstance(chosen, providers.ConfigurableProvider):
        chosen.configure(config)
    return chosen


def _find_provider(config: settings.Settings) -> providers.ClusterProvider:
    found, problems = discovery.discover_providers()
    if config.cluster != "auto":
        if config.cluster in found:
            return found[config.cluster]
        why = "; ".join(str(problem) for problem in problems)
        raise errors.SettingsError(
            f"cluster provider {config.cluster!r} is not installed" + (f" ({why})" if why else ""),
            hint=f"installed providers: {', '.join(sorted(found)) or 'none'}",
        )
    for name in AUTO_ORDER:
        provider = found.get(name)
        if provider is not None and provider.available():
            return provider
    raise errors.PermanentError(
        "no cluster provider can run on this machine",
        hint="install minikube or kind, or set LUMINA_CLUSTER=context with a kube context",
    )


def helm_executable() -> str:
    cached = (
        pathlib.Path(os.environ.get("LUMINA_CACHE", pathlib.Path.home() / ".cache" / "lumina"))
        / "bin"
        / "helm"
    )
    if cached.is_file():
        return str(cached)
    found = shutil.which("helm")
    if found is None:
        raise errors.PermanentError(
            "helm is not installed", hint="run tools/install-helm.sh (builds it from source)"
        )
    return found


def assemble(
    config: settings.Settings,
    plugins: tuple[services.ServicePlugin, ...],
    *,
    provider: providers.ClusterProvider | None = None,
    blocked_by: tuple[errors.PluginError, ...] = (),
) -> toolboxes.Toolbox:
    """Every adapter a cycle needs; starts the cluster if it is down."""
    chosen = provider or choose_provider(config)
    cluster = chosen.ensure_up()
    context = config.kube_context or cluster.context
    state_dir = config.repo_path(config.state_dir)
    app_urls.record(state_dir, chosen.name, cluster)
    return toolboxes.Toolbox(
        config=config,
        plugins=plugins,
        blocked_by=blocked_by,
        deps=toolboxes.Dependencies(
            images=engines.DockerImages(
                config, docker_env=chosen.docker_env, load_images=chosen.load_images
            ),
            kube=kube.Kube(cluster.kubeconfig, context, request_timeout=config.api_timeout_seconds),
            releaser=helm.Releaser(
                helm=helm_executable(),
                kubeconfig=cluster.kubeconfig,
                kube_context=context,
                namespace=config.namespace,
                release=config.release,
                chart=config.repo_path(config.chart),
                timeout_seconds=config.helm_timeout_seconds,
                read_timeout_seconds=2 * config.api_timeout_seconds,
            ),
            store=state.Directory(state_dir),
        ),
        metrics=metrics.Metrics(),
        hash_cache=worktree_reading.HashCache(state_dir / "cache" / "hashes.json"),
    )
