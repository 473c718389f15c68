"""One reconcile cycle: observe once, decide, act — until a state calls for nothing.

Who calls it: the daemon (:mod:`reconciler.daemon.running`) for every batch of changes,
and the ``once`` command. The shape is Flux's helm-controller: :mod:`observing` reads
the world once, :mod:`deciding` (pure) names its state, the state's one action
(:mod:`reconciler.cycle.actions`) runs and returns the observation it left, and the
loop asks again. Every way out goes through :mod:`concluding`: nothing raised inside a
cycle escapes it except cancellation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from reconciler import errors
from reconciler.cycle import actions, concluding, deciding, observing, outcomes, toolboxes
from reconciler.releasing import drifting

log = logging.getLogger("lumina.reconcile")

#: more steps than any path needs (unlock, build, deliver, upgrade, verify, remediate,
#: record): a loop that has not settled by then is a bug, reported as such
MAX_STEPS = 12


async def _concluded[T](conclude: Callable[..., T], *args: Any) -> T:
    """Conclude off the loop (the state is written and fsynced there), and never half:
    a cancellation that arrives meanwhile waits for the record, then goes on."""
    task = asyncio.ensure_future(asyncio.to_thread(conclude, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


async def run_cycle(
    box: toolboxes.Toolbox, *, first: bool = False, force_upgrade: bool = False
) -> outcomes.CycleResult:
    """Observe, decide, act until settled.

    ``first`` forces a look at the live release; ``force_upgrade`` runs Helm even when
    nothing changed in the repository (to correct drift).
    """
    phases = toolboxes.Phases(box.deps.clock)
    seen: observing.Observation | None = None
    states: list[str] = []
    try:
        if box.blocked_by:
            raise box.blocked_by[0]
        with phases.timed("plan"):
            seen = await observing.observe(box, observing.Request(first, force_upgrade))
        for _step in range(MAX_STEPS):
            decision = deciding.decide(seen)
            states.append(decision.state.value)
            if decision.action is deciding.Action.NONE:
                # Concluding writes (and fsyncs) the state: off the loop, as every write is.
                return await _concluded(
                    concluding.decided, box, seen, decision, phases.seconds, tuple(states)
                )
            log.info("%s: %s -> %s", decision.state.value, decision.reason, decision.action.value)
            with phases.timed(actions.PHASE_NAMES[decision.action]):
                seen = await actions.BY_ACTION[decision.action](box, seen, decision)
        raise RuntimeError(f"the cycle did not settle in {MAX_STEPS} steps: {' -> '.join(states)}")
    except asyncio.CancelledError:
        raise
    except errors.LuminaError as exc:
        return await _concluded(concluding.failed, box, seen, exc, phases.seconds, tuple(states))
    except Exception as exc:  # a bug or a library's surprise must not end the daemon
        return await _concluded(concluding.crashed, box, seen, exc, phases.seconds, tuple(states))
    finally:
        if "deploy" in phases.seconds:
            box.metrics.deploy_seconds.observe(
                phases.seconds["deploy"] + phases.seconds.get("ready", 0.0)
            )


async def detect_drift(box: toolboxes.Toolbox) -> list[drifting.Drift]:
    """Hand-made changes to the release's objects (an empty list when there are none)."""
    box.runtime.counters["helm_reads"] += 1
    desired = await box.deps.releaser.deployed_manifests()
    live: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in desired:
        if obj.get("kind") == "Deployment":
            name = str(obj["metadata"]["name"])
            found = await asyncio.to_thread(
                box.deps.kube.get, "apps/v1", "Deployment", box.config.namespace, name
            )
            if found is not None:
                live[("Deployment", name)] = found
    drifts = drifting.compare(desired, live, ignore=box.config.drift_ignore)
    for plugin in box.plugins:
        count = sum(1 for drift in drifts if drift.service == plugin.values_key)
        box.metrics.drifted.labels(plugin.name).set(count)
    return drifts
