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

from reconciler.cluster import rollout, trial_pods
from reconciler.cycle import concluding, deciding, observing, toolboxes
from reconciler.cycle.actions import reverting
from reconciler.releasing import targets

log = logging.getLogger("lumina.reconcile")


async def _revert_and_roll_back(
    box: toolboxes.Toolbox,
    seen: observing.Observation,
    jobs: dict[str, dict[str, str]],
    previous: int,
) -> tuple[tuple[str, ...], int]:
    """The remediation's writes: the data reverts, then the rollback; its notes and the
    new revision."""
    reverted = await reverting.revert_each(box, seen, jobs)
    log.info("helm rollback to revision %d", previous)
    return reverted, await box.deps.releaser.rollback(previous)


async def _record_stop(
    box: toolboxes.Toolbox,
    seen: observing.Observation,
    previous: int,
    revision: int,
    reverted: tuple[str, ...],
) -> None:
    """A stop landed once the rollback was done: recorded as a rollback's failure, so
    the next start does not try these inputs again."""
    assert seen.failure is not None
    said = "; ".join(
        [
            f"rollout failed: {seen.failure.result.summary}",
            f"rolled back to revision {previous} (now revision {revision}), then stopped "
            "before its pods were seen ready; these inputs are not tried again until "
            "they change",
            *reverted,
        ]
    )
    await asyncio.to_thread(concluding.stopped_in_rollback, box, seen, said, revision)
    log.warning("%s", said)


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
    # Armed before the first word or write: a kill from here on leaves the revert pending.
    jobs = reverting.jobs_for(box, seen, attempt)
    await reverting.arm(box, seen, jobs)
    log.warning(
        "rollout of revision %d failed (%s): rolling back to revision %d",
        attempt.revision,
        failed.summary,
        previous,
    )
    writes = asyncio.ensure_future(_revert_and_roll_back(box, seen, jobs, previous))
    try:
        reverted, revision = await asyncio.shield(writes)
    except asyncio.CancelledError:
        # A stop finishes the remediation's writes first: the old image cannot serve
        # data the failed pod migrated, and a revert cut short leaves the service
        # scaled to none. Only the wait for the old pods is skipped.
        log.warning("stopping: finishing the data revert and the rollback first")
        await asyncio.wait({writes})
        if not writes.cancelled() and writes.exception() is None:
            reverted, revision = writes.result()
            await _record_stop(box, seen, previous, revision, reverted)
        raise
    try:
        scaled = await trial_pods.scale_back(
            box.deps.kube, box.config.namespace, await box.deps.releaser.deployed_manifests()
        )
        if scaled:
            log.info("scaled %s back to the rolled-back revision's replicas", ", ".join(scaled))
        box.runtime.counters["helm_reads"] += 1
        release = await box.deps.releaser.current()
        restored = targets.release_images(box.plugins, release)
        by_key: dict[str, str] = {plugin.name: plugin.values_key for plugin in box.plugins}
        expected = {by_key[name]: image for name, image in restored.items() if name in by_key}
        again = await rollout.await_rollout(
            box.deps.kube, box.config.namespace, expected, timeout=box.config.helm_timeout_seconds
        )
    except asyncio.CancelledError:
        await _record_stop(box, seen, previous, revision, reverted)
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
