"""Record: write what the verified release runs into the state file.

Who calls it: the cycle, in state ``unrecorded``. The file listings behind each digest
are kept beside the state so a later ``plan`` can name the paths that changed.
"""

from __future__ import annotations

import asyncio
import dataclasses

from reconciler.cycle import deciding, observing, state, toolboxes


def _write(box: toolboxes.Toolbox, seen: observing.Observation, revision: int) -> state.State:
    assert seen.desired is not None
    snapshot = seen.desired.snapshot
    saved = seen.saved.model_copy(
        update={
            "services": {
                inputs.name: state.DeployedImage(
                    digest=inputs.digest, tag=inputs.tag, image=box.image(inputs.name)
                )
                for inputs in snapshot.services
            },
            "chart_digest": snapshot.chart_digest,
            "revision": revision,
            "release_inputs": seen.desired.release_inputs,
            "last_failure": None,
            "secret_fingerprints": dict(seen.desired.secret_fingerprints),
        }
    )
    for inputs in snapshot.services:
        box.deps.store.save_manifest(inputs.digest, inputs.files)
    box.deps.store.save_manifest(snapshot.chart_digest, snapshot.chart_files)
    box.deps.store.save(saved)
    return saved


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    revision = seen.verified_revision or seen.saved.revision
    assert revision is not None
    saved = await asyncio.to_thread(_write, box, seen, revision)
    return dataclasses.replace(seen, saved=saved)
