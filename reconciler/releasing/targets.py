"""What the cluster should run, as data: image names, chart values, the keys that tell
one target from another. Pure functions of the snapshot, settings and release values.

Who calls it: the cycle's observe step (what is wanted and what the release runs), its
upgrade, verify and remediate actions, the benchmarks. Nothing here touches docker,
helm or the cluster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler import services, settings
from reconciler.building import registries
from reconciler.releasing import helm


def merged_values(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` laid over ``base``, nested mappings merged key by key."""
    result = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged_values(result[key], value)
        else:
            result[key] = value
    return result


def node_port(plugins: Sequence[services.ServicePlugin], config: settings.Settings) -> int | None:
    """The NodePort the app is served on, when a public service is deployed."""
    return config.node_port if any(plugin.public for plugin in plugins) else None


def extra_values(
    plugins: Sequence[services.ServicePlugin], config: settings.Settings
) -> dict[str, Any]:
    """The settings' chart values, with the public service's NodePort from ``node_port``
    (the setting wins over a ``values`` entry: it is what ``status`` shows as the URL)."""
    ports = {
        plugin.values_key: {"service": {"nodePort": config.node_port}}
        for plugin in plugins
        if plugin.public
    }
    return merged_values(config.values, ports)


def release_inputs(
    chart_digest: str, config: settings.Settings, plugins: Sequence[services.ServicePlugin] = ()
) -> str:
    """Digest of everything besides images that shapes the release: chart and values."""
    values = json.dumps(extra_values(plugins, config), sort_keys=True, default=str)
    return hashlib.sha256(f"{chart_digest}\0{values}".encode()).hexdigest()[:32]


def chart_values(
    plugins: Sequence[services.ServicePlugin],
    tags: Mapping[str, str],
    config: settings.Settings,
    release_inputs: str = "",
    secret_checksums: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Chart values: the settings' extra values, every service's image, the keyed
    checksum of the Secrets it reads (by values key: a rotation rolls its pods), and the
    release's own record of its inputs (under ``global``, which every subchart accepts),
    so a fresh clone or a restarted daemon can tell from the release alone what it runs."""
    images: dict[str, Any] = {"global": {"lumina": {"inputs": release_inputs}}}
    for plugin in plugins:
        images[plugin.values_key] = {
            "image": {
                "repository": image_name(config, plugin),
                "tag": tags[plugin.name],
                "pullPolicy": "IfNotPresent",
            }
        }
        checksum = (secret_checksums or {}).get(plugin.values_key)
        if checksum:
            images[plugin.values_key]["secrets"] = {"checksum": checksum}
    return merged_values(extra_values(plugins, config), images)


def release_images(
    plugins: Sequence[services.ServicePlugin], release: helm.ReleaseState | None
) -> dict[str, str]:
    """Per service, the ``repository:tag`` the release runs: the repository counts too,
    since setting (or dropping) a registry moves every image without changing a tag."""
    if release is None:
        return {}
    found: dict[str, str] = {}
    for plugin in plugins:
        image = (release.values.get(plugin.values_key) or {}).get("image") or {}
        if image.get("tag"):
            found[plugin.name] = f"{image.get('repository', '')}:{image['tag']}"
    return found


def secret_checksums(
    plugins: Sequence[services.ServicePlugin], release: helm.ReleaseState | None
) -> dict[str, str]:
    """Per values key, the Secrets' checksum the release's pod templates carry."""
    if release is None:
        return {}
    found: dict[str, str] = {}
    for plugin in plugins:
        checksum = ((release.values.get(plugin.values_key) or {}).get("secrets") or {}).get(
            "checksum"
        )
        if checksum:
            found[plugin.values_key] = str(checksum)
    return found


def recorded_inputs(release: helm.ReleaseState | None) -> str | None:
    if release is None:
        return None
    recorded = ((release.values.get("global") or {}).get("lumina") or {}).get("inputs")
    return str(recorded) if recorded else None


def target_key(
    tags: Mapping[str, str],
    chart_digest: str,
    values: Mapping[str, Any],
    registry: str | None = None,
) -> str:
    # The settings' extra chart values are inputs too: fixing values the schema rejected
    # must be tried, not skipped as the same failure. So is the registry images come from.
    extra = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return (
        ",".join(f"{name}={tag}" for name, tag in sorted(tags.items()))
        + f";chart={chart_digest[:20]};values={extra[:12]}"
        + (f";registry={registry}" if registry else "")
    )


def image_name(config: settings.Settings, plugin: services.ServicePlugin) -> str:
    """Where the image lives: the plugin's name locally, or under the registry."""
    return registries.repository(config.registry, plugin.name) if config.registry else plugin.image
