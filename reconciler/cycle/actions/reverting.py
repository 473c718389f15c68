"""Data reverts of the remediate action: after a failed upgrade, a service's database is
brought back to its pre-upgrade backup when the failed pod migrated it.

Who calls it: :mod:`reconciler.cycle.actions.remediate`, before the rollback. The old
image could not serve a schema only the new one knows, and would crash on it; so, for
each service whose pre-upgrade hook made a backup and whose plugin declares a revert
command, the service is scaled to no pods (the failed pod must not hold the file), the
command runs once in a pod of the *previous* image on the service's own volume, and
decides: data still at the backup's schema is kept with every write, data that moved
is restored (the moved copy is kept). The rollback that follows starts the old pod.
A revert that cannot run is said in the cycle's message; the rollback goes on.
"""

from __future__ import annotations

import asyncio
import json
import logging

from reconciler import errors
from reconciler.cluster import trial_pods
from reconciler.cycle import observing, toolboxes
from reconciler.releasing import targets

log = logging.getLogger("lumina.reconcile")

STOP_SECONDS = 90.0
REVERT_SECONDS = 300.0


def _said(text: str) -> dict[str, object] | None:
    for line in reversed(text.strip().splitlines()):
        try:
            found = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(found, dict):
            return found
    return None


def jobs_for(
    box: toolboxes.Toolbox, seen: observing.Observation, attempt: observing.Rollout
) -> dict[str, dict[str, str]]:
    """The data reverts a failed ``attempt`` calls for: service -> the backup its
    pre-upgrade hook made and the previous image to revert with."""
    previous_images = targets.release_images(box.plugins, seen.release)
    jobs: dict[str, dict[str, str]] = {}
    for plugin in box.plugins:
        backup = attempt.backups.get(plugin.name)
        commands = plugin.database
        if not backup or commands is None or not commands.revert:
            continue
        image = previous_images.get(plugin.name)
        if image is None and plugin.name in seen.saved.services:
            deployed = seen.saved.services[plugin.name]
            image = f"{deployed.image}:{deployed.tag}"
        if image is not None:
            jobs[plugin.name] = {"backup": backup, "image": image}
    return jobs


async def arm(
    box: toolboxes.Toolbox, seen: observing.Observation, jobs: dict[str, dict[str, str]]
) -> None:
    """Record ``jobs`` as pending before the remedy does anything: a daemon killed from
    here on leaves them in ``state.json``, and its next start finishes them first."""
    if jobs:
        await _note_pending(box, seen, {**seen.saved.reverts_pending, **jobs})


async def revert_each(
    box: toolboxes.Toolbox, seen: observing.Observation, jobs: dict[str, dict[str, str]]
) -> tuple[str, ...]:
    """Revert each service's data (service -> its backup and the image to revert with).
    The jobs are pending in ``state.json`` already (:func:`arm`, or a cycle that found
    them there); each is cleared from it when it ends."""
    namespace = box.config.namespace
    notes: list[str] = []
    pending = {**seen.saved.reverts_pending, **jobs}
    for plugin in box.plugins:
        job = jobs.get(plugin.name)
        commands = plugin.database
        if job is None or commands is None or not commands.revert:
            continue
        backup, image = job["backup"], job["image"]
        live = await asyncio.to_thread(
            box.deps.kube.get, "apps/v1", "Deployment", namespace, plugin.values_key
        )
        if live is None:
            pending.pop(plugin.name, None)
            await _note_pending(box, seen, pending)
            continue
        log.info("reverting %s's data if the failed pod migrated it (%s)", plugin.name, backup)
        try:
            await trial_pods.scale_to_none(
                box.deps.kube, namespace, plugin.values_key, STOP_SECONDS
            )
            pod = trial_pods.revert_pod(
                live, service=plugin.name, image=image, command=[*commands.revert, backup]
            )
            ok, text = await trial_pods.run_to_completion(
                box.deps.kube, namespace, pod, timeout=REVERT_SECONDS
            )
        except errors.LuminaError as exc:
            log.warning("could not revert %s's data: %s", plugin.name, exc)
            notes.append(f"{plugin.name}: data not checked after the failure ({exc.message})")
            continue
        finally:
            # Ended, well or not: what is left is said in the notes, not retried forever.
            pending.pop(plugin.name, None)
            await _note_pending(box, seen, pending)
        notes.append(_outcome(plugin.name, ok, text))
    return tuple(notes)


async def _note_pending(
    box: toolboxes.Toolbox, seen: observing.Observation, pending: dict[str, dict[str, str]]
) -> None:
    """``state.json`` as the cycle found it, with the reverts now pending."""
    saved = seen.saved.model_copy(update={"reverts_pending": dict(pending)})
    await asyncio.to_thread(box.deps.store.save, saved)


def _outcome(service: str, ok: bool, text: str) -> str:
    """What a revert pod's output says it did, as a note."""
    said = _said(text)
    if not ok or said is None:
        last = text.strip().splitlines()[-1:] or ["no output"]
        log.warning("reverting %s's data failed: %s", service, last[0])
        return f"{service}: reverting the data failed: {last[0]}"
    restored = said.get("restored")
    if isinstance(restored, dict):
        kept = said.get("previous")
        kept_name = kept.get("name") if isinstance(kept, dict) else "?"
        note = (
            f"{service}: restored the database from {restored.get('name')} "
            f"({said.get('reason')}); the migrated one is kept as {kept_name}"
        )
    else:
        note = f"{service}: database kept as it was ({said.get('reason')})"
    log.info("%s", note)
    return note
