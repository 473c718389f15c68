"""Verify: wait, watching, until the release's pods are ready — or certain to fail.

Who calls it: the cycle, in state ``unverified``: right after its own upgrade, or for a
release found applied but never seen ready (an earlier run was stopped during the
wait, a fresh clone adopts a running release). The wait ends at the first certain
failure, not at a timeout: that is what lets a crashing backend be rolled back within
seconds of its first crash.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from reconciler import services
from reconciler.cluster import rollout
from reconciler.cycle import deciding, observing, toolboxes
from reconciler.releasing import helm

log = logging.getLogger("lumina.reconcile")


def _found_applied(box: toolboxes.Toolbox, seen: observing.Observation) -> observing.Rollout:
    """The rollout of a release this cycle did not apply: all of its Deployments."""
    assert seen.desired is not None
    revision = seen.release.revision if seen.release is not None else seen.saved.revision
    assert revision is not None
    previous = seen.saved.revision if seen.saved.revision != revision else None
    expected = {
        plugin.values_key: seen.desired.images[plugin.name]
        for plugin in box.plugins
        if plugin.name in seen.desired.images
    }
    return observing.Rollout(revision, previous, expected, applied_now=False)


def _post_deploy(box: toolboxes.Toolbox, seen: observing.Observation) -> list[str]:
    """The changed services' smoke checks; what failed, in words."""
    assert seen.desired is not None
    plan = seen.plan()
    changed = {service.name for service in plan.rebuilds} if plan is not None else set()
    problems = []
    for plugin in box.plugins:
        if plugin.name not in changed or plugin.post_deploy is None:
            continue
        image = seen.desired.images[plugin.name]
        try:
            plugin.post_deploy(services.DeployedService(plugin.name, image, box.config.namespace))
        except Exception as exc:  # a plugin's check may raise anything
            problems.append(f"post-deploy check of {plugin.name} failed: {exc}")
            log.warning("%s", problems[-1])
    return problems


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    assert seen.desired is not None
    attempt = seen.pending_rollout or _found_applied(box, seen)
    said: set[str] = set()

    def blink(exc: Exception) -> None:
        if str(exc) not in said:  # the API may blink during a rollout: say so once
            said.add(str(exc))
            log.warning("rollout watch: %s (still waiting)", exc)

    result = await rollout.await_rollout(
        box.deps.kube,
        box.config.namespace,
        attempt.expected,
        timeout=box.config.helm_timeout_seconds,
        on_error=blink,
    )
    if result.verdict is not rollout.Verdict.READY:
        log.warning("rollout of revision %d failed: %s", attempt.revision, result.summary)
        return dataclasses.replace(
            seen, pending_rollout=None, failure=observing.Failure(attempt, result)
        )
    log.info("revision %d ready in %.1fs", attempt.revision, result.seconds)
    verified = seen.with_release(
        helm.ReleaseState(attempt.revision, "deployed", {}),
        seen.desired.images,
        seen.desired.release_inputs,
    )
    # A plugin's hook may block (a smoke request): off the loop the status page answers.
    hooks = await asyncio.to_thread(_post_deploy, box, seen) if attempt.applied_now else []
    return dataclasses.replace(
        verified,
        pending_rollout=None,
        verified_revision=attempt.revision,
        converged_revision=attempt.revision if attempt.applied_now else seen.converged_revision,
        rollout_result=result,
        notes=(*seen.notes, *hooks),
    )
