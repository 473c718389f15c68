"""Finish a data revert that a killed daemon began: in state ``revert-unfinished``.

Who calls it: the cycle, before anything else it might do. The failed pod may have
migrated the data to a schema only its image knows; the revert was recorded in
``state.json`` before the service was scaled to none, so it is run again here, to its
end, with the image and backup recorded. The revert decides by itself whether the data
moved, so running it twice keeps data that did not. Nothing is rolled back here: the
next state (a revision to verify, or the repository's to apply) does what it needs.
"""

from __future__ import annotations

import dataclasses
import logging

from reconciler.cycle import deciding, observing, toolboxes
from reconciler.cycle.actions import reverting

log = logging.getLogger("lumina.reconcile")


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    pending = dict(seen.saved.reverts_pending)
    log.warning("a data revert was cut short (%s): finishing it", ", ".join(sorted(pending)))
    notes = await reverting.revert_each(box, seen, pending)
    # Whatever the revert said, it is over: the pending mark never loops the cycle.
    saved = seen.saved.model_copy(update={"reverts_pending": {}})
    return dataclasses.replace(seen, saved=saved, notes=(*seen.notes, *notes))
