"""Trial starts of the upgrade action: each opted-in service the upgrade restarts gets
its new pod started once on a copy of its data, before the serving pod is stopped.

Who calls it: :mod:`reconciler.cycle.actions.upgrade`, after the pre-upgrade hooks
(whose backup the trial copies) and before Helm. Only a service that has a serving
pod is tried: without one there is nothing live to protect, and refusing would block
the fix. A failed trial raises :class:`trial_pods.TrialStartFailedError` — the upgrade
never starts, and the cycle ends ``trial-failed`` for these inputs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from reconciler.cluster import trial_pods
from reconciler.cycle import toolboxes
from reconciler.releasing import pre_upgrading

log = logging.getLogger("lumina.reconcile")


def _deployment(rendered: Iterable[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    for obj in rendered:
        if obj.get("kind") == "Deployment" and obj.get("metadata", {}).get("name") == name:
            return obj
    return None


async def try_new_pods(
    box: toolboxes.Toolbox,
    rendered: Sequence[Mapping[str, Any]],
    prepared: pre_upgrading.Prepared,
) -> tuple[str, ...]:
    """Run the trials this upgrade calls for; one note per trial that ran or was skipped."""
    namespace = box.config.namespace
    notes: list[str] = []
    for plugin in box.plugins:
        trial = plugin.trial_start
        serving = prepared.serving.get(plugin.name)
        deployment = _deployment(rendered, plugin.values_key)
        if trial is None or serving is None or deployment is None:
            continue
        node = await asyncio.to_thread(trial_pods.serving_node, box.deps.kube, namespace, serving)
        spec = deployment["spec"]["template"]["spec"]
        copies = trial_pods.trial_config_maps(rendered, spec, plugin.values_key)
        pod = trial_pods.trial_pod(
            deployment,
            trial,
            service=plugin.name,
            backup=prepared.backups.get(plugin.name, ""),
            node=node,
            config_maps={old: str(new["metadata"]["name"]) for old, new in copies.items()},
        )
        log.info("trial start of the new %s image on a copy of its data", plugin.name)
        result = await trial_pods.run(
            box.deps.kube,
            namespace,
            plugin.name,
            pod,
            copies.values(),
            timeout=trial.timeout_seconds,
        )
        box.runtime.counters["trial_starts"] += 1
        if result.verdict is trial_pods.TrialVerdict.FAILED:
            log.warning("trial start of %s failed: %s", plugin.name, result.summary)
            raise trial_pods.TrialStartFailedError(result)
        if result.verdict is trial_pods.TrialVerdict.SKIPPED:
            said = f"{plugin.name}: trial start skipped ({result.summary}); upgrading untried"
        else:
            said = (
                f"{plugin.name}: the new image started on a copy of its data in "
                f"{result.seconds:.1f}s"
            )
        log.info("trial start %s", said)
        notes.append(said)
    return tuple(notes)
