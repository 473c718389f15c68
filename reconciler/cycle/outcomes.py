"""What a reconcile cycle ended with: a value, never an exception.

Who uses it: :mod:`reconciler.cycle.concluding` makes one per cycle; the daemon, the CLI and
the status endpoint report it; the state file keeps the last ones (``to_json``).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Mapping
from typing import Any

from reconciler.cluster import rollout


class Outcome(enum.StrEnum):
    CONVERGED = "converged"
    NOTHING_TO_DO = "nothing-to-do"
    BUILD_FAILED = "build-failed"
    PUSH_FAILED = "push-failed"
    CHART_REJECTED = "chart-rejected"
    ROLLED_BACK = "rolled-back"
    #: the new image failed its trial start on a copy of the data: nothing was changed
    TRIAL_FAILED = "trial-failed"
    BLOCKED = "blocked"
    SKIPPED_KNOWN_FAILURE = "skipped-known-failure"
    RETRY = "retry"
    PAUSED = "paused"

    @property
    def converged(self) -> bool:
        return self in (Outcome.CONVERGED, Outcome.NOTHING_TO_DO)


@dataclasses.dataclass(frozen=True)
class CycleResult:
    outcome: Outcome
    message: str
    source: str = ""
    built: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    revision: int | None = None
    diagnosis: rollout.Diagnosis | None = None
    phases: Mapping[str, float] = dataclasses.field(default_factory=dict)
    retry_after: float | None = None
    finished_at: float = dataclasses.field(default_factory=time.time)
    #: services whose image was pushed to the registry in this cycle
    pushed: tuple[str, ...] = ()
    #: services the registry already had: neither built nor pushed
    in_registry: tuple[str, ...] = ()
    #: how the cycle's last rollout wait ended (what ended it, after how long)
    rollout: rollout.RolloutResult | None = None
    #: the states the cycle went through, in order (the last one ended it)
    states: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "message": self.message,
            "source": self.source,
            "built": list(self.built),
            "reused": list(self.reused),
            "pushed": list(self.pushed),
            "in_registry": list(self.in_registry),
            "revision": self.revision,
            "diagnosis": self.diagnosis.to_json() if self.diagnosis else None,
            "phases": {name: round(seconds, 3) for name, seconds in self.phases.items()},
            "finished_at": self.finished_at,
            "rollout": self.rollout.to_json() if self.rollout else None,
            "states": list(self.states),
        }
