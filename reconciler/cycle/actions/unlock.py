"""Unlock: a release left ``pending-*`` is waited for (its helm still works) or rolled back.

Who calls it: the cycle, in state ``locked``. Reads the release again afterwards: it is
the one thing this action changed.
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
    recovered = await box.deps.releaser.recover()
    if recovered:
        log.warning("recovered release %s: %s", box.config.release, recovered)
    box.runtime.counters["helm_reads"] += 1
    release = await box.deps.releaser.current()
    sources = observing.Sources.of(box)
    baseline = await asyncio.to_thread(
        observing.deployed_baseline, sources, seen.saved, release, True
    )
    notes = (*seen.notes, f"recovered: {recovered}") if recovered else seen.notes
    return dataclasses.replace(
        seen, release=release, release_read=True, baseline=baseline, helm_writers=(), notes=notes
    )
