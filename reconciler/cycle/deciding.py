"""Decide: one state, from a fixed set, for an observation — and the one action it calls for.

Pure: no I/O, no clock. Who calls it: :mod:`reconciler.cycle.reconciling` after every
observation and every action (the loop ends at a state whose action is ``NONE``), and
the ``plan`` command, which prints exactly this decision. The shape is Flux's
helm-controller (``atomic_release.go``): the state is the whole answer to "what now?",
and :data:`ACTION_FOR_STATE` the only place that says what each state leads to.
"""

from __future__ import annotations

import dataclasses
import enum

from reconciler.cluster import rollout
from reconciler.cycle import observing, planning
from reconciler.inputs import secret_inputs


class CycleState(enum.StrEnum):
    #: git is mid-merge/rebase or locked: the work tree is not a state to deploy
    PAUSED = "paused"
    #: the release is ``pending-*`` (a crash, or a helm of a killed run still at work)
    LOCKED = "locked"
    #: a data revert was begun and never finished (the daemon was killed mid-way)
    REVERT_UNFINISHED = "revert-unfinished"
    #: these exact inputs failed before; waiting for a change
    KNOWN_FAILURE = "known-failure"
    #: the cluster runs what the repository says, and the state file knows it
    IN_SYNC = "in-sync"
    #: the release runs the repository's state, verified, but the state file lags
    UNRECORDED = "unrecorded"
    #: the release runs the repository's state; its pods were never seen ready
    UNVERIFIED = "unverified"
    #: images to deploy that exist nowhere the next step can take them from
    IMAGES_MISSING = "images-missing"
    #: images built but not yet where the nodes can run them
    UNDELIVERED = "undelivered"
    #: everything is ready to go: the release differs from the repository
    OUT_OF_SYNC = "out-of-sync"
    #: an applied release's pods are certain to fail (or never became ready)
    ROLLOUT_FAILED = "rollout-failed"
    #: a failed rollout was returned to the last deployed revision
    ROLLED_BACK = "rolled-back"


class Action(enum.StrEnum):
    NONE = "none"
    UNLOCK = "unlock"
    REVERT = "revert"
    RECORD = "record"
    BUILD = "build"
    DELIVER = "deliver"
    UPGRADE = "upgrade"
    VERIFY = "verify"
    REMEDIATE = "remediate"


ACTION_FOR_STATE: dict[CycleState, Action] = {
    CycleState.PAUSED: Action.NONE,
    CycleState.LOCKED: Action.UNLOCK,
    CycleState.REVERT_UNFINISHED: Action.REVERT,
    CycleState.KNOWN_FAILURE: Action.NONE,
    CycleState.IN_SYNC: Action.NONE,
    CycleState.UNRECORDED: Action.RECORD,
    CycleState.UNVERIFIED: Action.VERIFY,
    CycleState.IMAGES_MISSING: Action.BUILD,
    CycleState.UNDELIVERED: Action.DELIVER,
    CycleState.OUT_OF_SYNC: Action.UPGRADE,
    CycleState.ROLLOUT_FAILED: Action.REMEDIATE,
    CycleState.ROLLED_BACK: Action.NONE,
}


@dataclasses.dataclass(frozen=True)
class Decision:
    state: CycleState
    #: in words, for logs, ``plan`` and the cycle's message
    reason: str
    #: the services the action is for (to build, deliver, upgrade, verify)
    services: tuple[str, ...] = ()
    plan: planning.Plan | None = None

    @property
    def action(self) -> Action:
        return ACTION_FOR_STATE[self.state]

    def to_json(self) -> dict[str, object]:
        return {
            "state": self.state.value,
            "action": self.action.value,
            "reason": self.reason,
            "services": list(self.services),
        }


def _lost_images(seen: observing.Observation) -> tuple[str, ...]:
    """Services whose wanted image the failed rollout's pods could not find on the
    node, and that were not delivered again already in this cycle."""
    failure, desired = seen.failure, seen.desired
    if failure is None or desired is None or failure.result.diagnosis is None:
        return ()
    diagnosis = failure.result.diagnosis
    if diagnosis.reason is not rollout.FailureReason.IMAGE_MISSING:
        return ()
    image = failure.attempt.expected.get(diagnosis.service)
    return tuple(
        sorted(
            name
            for name, wanted in desired.images.items()
            if wanted == image and name not in seen.redelivered
        )
    )


def _after_failure(seen: observing.Observation) -> Decision:
    """A rollout failed: deliver a lost image again, else remedy."""
    assert seen.failure is not None
    lost = _lost_images(seen)
    if lost:
        # The release is right, the node lost its image (pruned, a node replaced):
        # deliver it again rather than roll back what the repository asks for.
        again = tuple(name for name in lost if name not in (*seen.built_now, *seen.reused))
        if again:
            return Decision(
                CycleState.IMAGES_MISSING,
                f"the node lacks the image of {', '.join(lost)}: to build or reuse",
                again,
            )
        return Decision(
            CycleState.UNDELIVERED,
            f"the node lacks the image of {', '.join(lost)}: to deliver again",
            lost,
        )
    return Decision(
        CycleState.ROLLOUT_FAILED,
        f"rollout of revision {seen.failure.attempt.revision} failed: "
        f"{seen.failure.result.summary}",
        tuple(seen.failure.attempt.expected),
    )


def _what_the_cycle_started(seen: observing.Observation) -> Decision | None:
    """The states that come before anything the repository asks for: git paused, a
    remedy done or due, a revert cut short, a rollout to verify, a release locked."""
    if seen.paused:
        return Decision(CycleState.PAUSED, seen.paused)
    if seen.rolled_back:
        return Decision(CycleState.ROLLED_BACK, seen.rolled_back)
    if seen.saved.reverts_pending:
        # Before any rollout: the data a killed revert left may be at a schema only the
        # failed image knows, and every image but that one would crash on it.
        pending = tuple(sorted(seen.saved.reverts_pending))
        return Decision(
            CycleState.REVERT_UNFINISHED,
            f"the data revert of {', '.join(pending)} was cut short: finishing it",
            pending,
        )
    if seen.failure is not None:
        return _after_failure(seen)
    if seen.pending_rollout is not None:
        return Decision(
            CycleState.UNVERIFIED,
            f"revision {seen.pending_rollout.revision} applied; waiting for its pods",
            tuple(seen.pending_rollout.expected),
        )
    release = seen.release
    if release is not None and release.status.startswith("pending"):
        holders = ", ".join(map(str, seen.helm_writers))
        return Decision(
            CycleState.LOCKED,
            f"revision {release.revision} is {release.status}"
            + (f" (helm PID {holders} still at work)" if holders else ""),
        )
    return None


def decide(seen: observing.Observation) -> Decision:
    """The state ``seen`` is in. Order matters: what the cycle itself started (a rollout
    to verify or remedy) comes before anything the repository asks for."""
    started = _what_the_cycle_started(seen)
    if started is not None:
        return started
    release = seen.release
    assert seen.desired is not None
    plan = seen.plan()
    assert plan is not None
    # Drift is corrected by one upgrade: once this cycle applied one, the force is spent.
    forced = seen.request.force_upgrade and seen.converged_revision is None
    changed = tuple(service.name for service in plan.rebuilds)
    # Likewise a rotation: the upgrade this cycle applied carried the new values.
    rotated = (
        secret_inputs.changed(seen.saved.secret_fingerprints, seen.desired.secret_fingerprints)
        if seen.converged_revision is None
        else ()
    )
    deployed = release is not None and release.status == "deployed"
    in_sync = (
        not changed
        and not plan.chart_changed
        and not rotated
        and (deployed or not seen.release_read)
        and not forced
        and (seen.release_read or seen.saved.revision is not None)
    )
    if in_sync:
        revision = release.revision if release is not None else seen.saved.revision
        recorded = seen.saved.revision == revision and seen.saved.release_inputs == (
            seen.desired.release_inputs
        )
        if recorded and seen.saved.secret_fingerprints == dict(seen.desired.secret_fingerprints):
            return Decision(CycleState.IN_SYNC, f"revision {revision} runs this state", plan=plan)
        if recorded:
            # Known to run, not yet known with which secrets: nothing to roll, only to note.
            return Decision(
                CycleState.UNRECORDED, f"revision {revision}: noting its secrets", plan=plan
            )
        if seen.verified_revision == revision:
            return Decision(
                CycleState.UNRECORDED, f"revision {revision} verified; recording it", plan=plan
            )
        return Decision(
            CycleState.UNVERIFIED,
            f"revision {revision} runs this state but was not seen ready by this tool",
            tuple(sorted(seen.desired.images)),
            plan,
        )
    failed = seen.saved.last_failure
    if not forced and failed and failed.get("target") == seen.desired.key:
        return Decision(
            CycleState.KNOWN_FAILURE,
            f"these inputs already failed ({failed.get('outcome')}): "
            f"{failed.get('message')}; waiting for a change",
            plan=plan,
        )
    missing = tuple(name for name in changed if name not in seen.built)
    if missing:
        return Decision(CycleState.IMAGES_MISSING, f"to build: {', '.join(missing)}", missing, plan)
    undelivered = tuple(name for name in changed if name not in seen.delivered)
    if undelivered:
        return Decision(
            CycleState.UNDELIVERED, f"to deliver: {', '.join(undelivered)}", undelivered, plan
        )
    why = (
        f"new images: {', '.join(changed)}"
        if changed
        else f"secrets changed: {', '.join(rotated)}"
        if rotated
        else "the chart or its values changed"
        if plan.chart_changed
        else "drift is corrected"
        if forced
        else f"the release is {release.status if release else 'not installed'}"
    )
    return Decision(CycleState.OUT_OF_SYNC, why, changed, plan)
