"""Deliver: copy built images into the cluster's nodes (no registry: the nodes cannot pull).

Who calls it: the cycle, in state ``undelivered``. With a registry the build action
pushes and the nodes pull, so nothing is left for this one.
"""

from __future__ import annotations

import asyncio
import dataclasses

from reconciler.cycle import deciding, observing, toolboxes


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    assert seen.desired is not None
    references = [seen.desired.images[name] for name in decision.services]
    await asyncio.to_thread(box.provider.load_images, references)
    return dataclasses.replace(seen, delivered=seen.delivered | frozenset(decision.services))
