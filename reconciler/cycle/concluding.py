"""Conclude: every way a cycle ends becomes one :class:`outcomes.CycleResult`.

Who calls it: :mod:`reconciler.cycle.reconciling`, once per cycle, with the last
decision or with the error that stopped the cycle. Errors of the reconciler say their
outcome and whether the failure is the inputs' own; anything else (a bug, a library's
surprise) is a temporary failure retried with a growing delay, its traceback logged
once. The state file and the metrics are written here and nowhere else in the cycle.
"""

from __future__ import annotations

import logging

from reconciler import errors
from reconciler.cluster import rollout, trial_pods
from reconciler.cycle import deciding, observing, outcomes, ports, state, toolboxes

log = logging.getLogger("lumina.reconcile")

#: delays after consecutive unexpected errors, the last one repeated
BACKOFF_SECONDS = (5.0, 15.0, 30.0, 60.0, 120.0)
_TERMINAL = {
    deciding.CycleState.PAUSED: outcomes.Outcome.PAUSED,
    deciding.CycleState.KNOWN_FAILURE: outcomes.Outcome.SKIPPED_KNOWN_FAILURE,
    deciding.CycleState.ROLLED_BACK: outcomes.Outcome.ROLLED_BACK,
}


def _result(
    seen: observing.Observation | None,
    outcome: outcomes.Outcome,
    message: str,
    phases: dict[str, float],
    states: tuple[str, ...],
    *,
    clock: ports.Clock,
    revision: int | None = None,
    retry_after: float | None = None,
    diagnosis: rollout.Diagnosis | None = None,
) -> outcomes.CycleResult:
    failure = seen.failure if seen is not None else None
    if diagnosis is None and failure is not None:
        diagnosis = failure.result.diagnosis
    return outcomes.CycleResult(
        outcome,
        message,
        source=seen.desired.snapshot.label if seen is not None and seen.desired else "",
        built=seen.built_now if seen is not None else (),
        reused=seen.reused if seen is not None else (),
        revision=revision,
        diagnosis=diagnosis,
        phases=phases,
        retry_after=retry_after,
        pushed=seen.pushed if seen is not None else (),
        in_registry=seen.in_registry if seen is not None else (),
        rollout=(
            failure.result
            if failure is not None
            else seen.rollout_result
            if seen is not None
            else None
        ),
        states=states,
        finished_at=clock.time(),
    )


def _save(
    box: toolboxes.Toolbox,
    saved: state.State,
    result: outcomes.CycleResult,
    failed_inputs: str | None = None,
) -> None:
    """Write the state with ``result`` in its history (and, for a failure of the inputs
    themselves, those inputs, so they are not tried again until they change)."""
    update: dict[str, object] = {
        "history": [*saved.history, result.to_json()][-state.HISTORY_KEPT :]
    }
    if failed_inputs is not None:
        update["last_failure"] = {
            "target": failed_inputs,
            "outcome": result.outcome.value,
            "message": result.message,
        }
    try:
        box.deps.store.save(saved.model_copy(update=update))
    except OSError as exc:
        # The outcome stands and is reported; only its record is lost, and the next
        # cycle reads the release again. An escaping error would end `once` in a
        # traceback and the daemon's cycle without an outcome.
        log.error(
            "could not record the cycle in %s (%s): fix the state directory; "
            "the next cycle reads the release again",
            box.deps.store.path,
            exc.strerror or exc,
        )


def decided(
    box: toolboxes.Toolbox,
    seen: observing.Observation,
    decision: deciding.Decision,
    phases: dict[str, float],
    states: tuple[str, ...],
) -> outcomes.CycleResult:
    """The cycle reached a state with nothing left to do."""
    box.runtime.counters["unexpected_errors"] = 0
    acted = len(states) > 1
    if decision.state is deciding.CycleState.IN_SYNC:
        revision = seen.converged_revision
        if revision is not None:
            outcome, said = outcomes.Outcome.CONVERGED, f"revision {revision}: {seen.applied}"
            box.metrics.last_success.set_to_current_time()
        else:
            outcome = outcomes.Outcome.NOTHING_TO_DO
            said = decision.reason.replace(" runs ", " already runs ", 1)
            revision = seen.release.revision if seen.release else seen.saved.revision
        message = "; ".join([said, *seen.notes])
        result = _result(
            seen, outcome, message, phases, states, clock=box.deps.clock, revision=revision
        )
        if acted:
            # After a crash or in a new clone, `status` shows the release was adopted.
            _save(box, seen.saved, result)
        box.metrics.cycles.labels(result.outcome.value).inc()
        return result
    outcome = _TERMINAL[decision.state]
    retry = 2.0 if outcome is outcomes.Outcome.PAUSED else None
    result = _result(
        seen, outcome, decision.reason, phases, states, clock=box.deps.clock, retry_after=retry
    )
    if outcome is outcomes.Outcome.ROLLED_BACK:
        assert seen.desired is not None
        _save(box, seen.saved, result, failed_inputs=seen.desired.key)
    box.metrics.cycles.labels(result.outcome.value).inc()
    return result


def failed(
    box: toolboxes.Toolbox,
    seen: observing.Observation | None,
    exc: errors.LuminaError,
    phases: dict[str, float],
    states: tuple[str, ...],
) -> outcomes.CycleResult:
    """An error of ours stopped the cycle: its outcome, remembered if the inputs' own."""
    box.runtime.counters["unexpected_errors"] = 0
    outcome = outcomes.Outcome(exc.outcome)
    retry = exc.retry_after if isinstance(exc, errors.TemporaryError) else None
    if retry is not None:
        log.warning("%s, will retry in %.0fs: %s", outcome.value, retry, exc)
    tried = exc.result.diagnosis if isinstance(exc, trial_pods.TrialStartFailedError) else None
    result = _result(
        seen,
        outcome,
        str(exc),
        phases,
        states,
        clock=box.deps.clock,
        retry_after=retry,
        diagnosis=tried,
    )
    box.metrics.cycles.labels(outcome.value).inc()
    if outcome is outcomes.Outcome.RETRY or seen is None:
        return result
    inputs = seen.desired.key if exc.of_inputs and seen.desired is not None else None
    _save(box, seen.saved, result, failed_inputs=inputs)
    return result


def crashed(
    box: toolboxes.Toolbox,
    seen: observing.Observation | None,
    exc: Exception,
    phases: dict[str, float],
    states: tuple[str, ...],
) -> outcomes.CycleResult:
    """Anything else: a temporary failure, retried later with a growing delay."""
    count = box.runtime.counters.get("unexpected_errors", 0)
    box.runtime.counters["unexpected_errors"] = count + 1
    delay = BACKOFF_SECONDS[min(count, len(BACKOFF_SECONDS) - 1)]
    said = f"{type(exc).__name__}: {exc}"
    if said not in box.runtime.seen_errors:
        box.runtime.seen_errors.add(said)
        log.error("unexpected error in the cycle (retrying in %.0fs)", delay, exc_info=exc)
    else:
        log.error("unexpected error again (retrying in %.0fs): %s", delay, said)
    box.metrics.cycles.labels(outcomes.Outcome.RETRY.value).inc()
    return _result(
        seen,
        outcomes.Outcome.RETRY,
        f"unexpected error: {said}; retrying in {delay:.0f}s",
        phases,
        states,
        clock=box.deps.clock,
        retry_after=delay,
    )


def stopped_in_rollback(
    box: toolboxes.Toolbox, seen: observing.Observation, message: str, revision: int
) -> outcomes.CycleResult:
    """A stop (SIGTERM) landed while a failed rollout was remedied: the data revert and
    the rollback were finished first, so the failure is recorded as a rollback's, and
    the next start does not try the same inputs again; ``revision`` is the rollback's."""
    assert seen.desired is not None
    result = _result(
        seen,
        outcomes.Outcome.ROLLED_BACK,
        message,
        {},
        ("rollout-failed",),
        clock=box.deps.clock,
        revision=revision,
    )
    _save(
        box,
        seen.saved.model_copy(update={"revision": revision}),
        result,
        failed_inputs=seen.desired.key,
    )
    box.metrics.cycles.labels(result.outcome.value).inc()
    return result
