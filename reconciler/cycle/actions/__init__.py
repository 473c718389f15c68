"""The actions a decided state calls for, one module each; :data:`BY_ACTION` maps them.

Every action takes the adapters (the toolbox), the observation and the decision, does
one thing, and returns the observation as that thing left it — never a verdict of its
own: the cycle asks :func:`reconciler.cycle.deciding.decide` again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from reconciler.cycle import deciding, observing, toolboxes
from reconciler.cycle.actions import (
    build,
    deliver,
    finish_revert,
    record,
    remediate,
    unlock,
    upgrade,
    verify,
)

Act = Callable[
    [toolboxes.Toolbox, observing.Observation, deciding.Decision],
    Awaitable[observing.Observation],
]

BY_ACTION: dict[deciding.Action, Act] = {
    deciding.Action.UNLOCK: unlock.run,
    deciding.Action.REVERT: finish_revert.run,
    deciding.Action.RECORD: record.run,
    deciding.Action.BUILD: build.run,
    deciding.Action.DELIVER: deliver.run,
    deciding.Action.UPGRADE: upgrade.run,
    deciding.Action.VERIFY: verify.run,
    deciding.Action.REMEDIATE: remediate.run,
}

#: the name each action's seconds are reported under in a cycle's phases
PHASE_NAMES: dict[deciding.Action, str] = {
    deciding.Action.UNLOCK: "unlock",
    deciding.Action.REVERT: "revert",
    deciding.Action.RECORD: "record",
    deciding.Action.BUILD: "build",
    deciding.Action.DELIVER: "load",
    deciding.Action.UPGRADE: "deploy",
    deciding.Action.VERIFY: "ready",
    deciding.Action.REMEDIATE: "rollback",
}
