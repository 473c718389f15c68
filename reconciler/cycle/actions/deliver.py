"""Deliver: copy built images into the cluster's nodes (no registry: the nodes cannot pull).

Who calls it: the cycle, in state ``undelivered``. With a registry the build action
pushes and the nodes pull, so nothing is left for this one — except when a rollout
found the node without an image the release names (pruned, a new node): then the image
goes in again, the stuck pod is deleted so its Deployment makes a new one at once
(instead of after the kubelet's pull back-off), and the rollout is watched again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from reconciler.cycle import deciding, observing, toolboxes

log = logging.getLogger("lumina.reconcile")


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    assert seen.desired is not None
    references = [seen.desired.images[name] for name in decision.services]
    await asyncio.to_thread(box.deps.images.deliver, references)
    delivered = seen.delivered | frozenset(decision.services)
    failure = seen.failure
    if failure is None:
        return dataclasses.replace(seen, delivered=delivered)
    if failure.result.diagnosis is not None and failure.result.diagnosis.pod:
        await asyncio.to_thread(
            box.deps.kube.delete, "v1", "Pod", box.config.namespace, failure.result.diagnosis.pod
        )
    log.warning("delivered %s again; watching the rollout again", ", ".join(decision.services))
    return dataclasses.replace(
        seen,
        delivered=delivered,
        redelivered=seen.redelivered | frozenset(decision.services),
        failure=None,
        pending_rollout=failure.attempt,
    )
