"""Remediate: return a failed rollout to the last deployed revision, and wait until the
old pods serve again.

Who calls it: the cycle, in state ``rollout-failed``. The rollback is ours (``helm
rollback`` without ``--wait``), and so is the wait after it: a Recreate Deployment has
no pod while it rolls back, so the cycle says when the old one is ready again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from reconciler import errors
from reconciler.cluster import rollout
from reconciler.cycle import concluding, deciding, observing, toolboxes
from reconciler.cycle.actions import reverting
from reconciler.releasing import targets

log = logging.getLogger("lumina.reconcile")


async def _rolled_back_to(box: toolboxes.Toolbox, attempt: observing.Rollout) -> int | None:
    """The revision a rollback cut short by a stop left deployed, if Helm says one is
    (the rollback's return value is lost with the cancellation)."""
    try:
        release = await box.deps.releaser.current()
    except errors.LuminaError as exc:
        log.warning("could not read the release after the rollback: %s", exc)
        return None
    if release is None or release.status != "deployed" or release.revision == attempt.revision:
        return None
    return release.revision


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    assert seen.failure is not None
    attempt, failed = seen.failure.attempt, seen.failure.result
    previous = attempt.previous_revision
    if previous is None:
        return dataclasses.replace(
            seen,
            rolled_back=f"rollout failed: {failed.summary}; nothing was deployed before "
            f"revision {attempt.revision}, so there is nothing to return to",
        )
    log.warning(
        "rollout of revision %d failed (%s): rolling back to revision %d",
        attempt.revision,
        failed.summary,
        previous,
    )
    reverted = await reverting.revert_data(box, seen, attempt)
    log.info("rolling back to revision %d with helm", previous)
    try:
        revision = await box.deps.releaser.rollback(previous)
        box.runtime.counters["helm_reads"] += 1
        release = await box.deps.releaser.current()
        restored = targets.release_images(box.plugins, release)
        by_key: dict[str, str] = {plugin.name: plugin.values_key for plugin in box.plugins}
        expected = {by_key[name]: image for name, image in restored.items() if name in by_key}
        again = await rollout.await_rollout(
            box.deps.kube, box.config.namespace, expected, timeout=box.config.helm_timeout_seconds
        )
    except asyncio.CancelledError:
        # Helm's rollback is never cut short (see the Helm adapter): by now it ran.
        said = "; ".join(
            [
                f"rollout failed: {failed.summary}",
                f"stopped while rolling back to revision {previous} (helm finished the "
                "rollback); these inputs are not tried again until they change",
                *reverted,
            ]
        )
        await asyncio.to_thread(
            concluding.stopped_in_rollback, box, seen, said, await _rolled_back_to(box, attempt)
        )
        log.warning("%s", said)
        raise
    said = f"rolled back to revision {previous} (now revision {revision})"
    if again.verdict is rollout.Verdict.READY:
        said += f", serving again after {again.seconds:.1f}s"
        saved = seen.saved.model_copy(update={"revision": revision})
    else:
        said += f"; not ready again yet: {again.summary}"
        saved = seen.saved
    return dataclasses.replace(
        seen,
        saved=saved,
        rolled_back="; ".join([f"rollout failed: {failed.summary}", said, *reverted]),
    )
