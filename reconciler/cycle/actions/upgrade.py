"""Upgrade: check the chart, back up what an upgrade restarts, try it, let Helm apply.

Who calls it: the cycle, in state ``out-of-sync``. Nothing reaches the cluster before
the chart rendered and passed the pre-flight checks and the pre-upgrade hooks (the
backend's database backup) succeeded in the pods that still serve, and the new image
of a service that opts in started on a copy of its data (:mod:`trying`). Helm applies the
release and returns at once (no ``--wait``, no ``--atomic``): the rollout that follows
is the verify action's to judge, and a failure the remediate action's to undo.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping

from reconciler import errors
from reconciler.cluster import backup_copies, namespaces, rollout, secrets
from reconciler.cycle import deciding, observing, toolboxes
from reconciler.cycle.actions import build, trying
from reconciler.inputs import secret_inputs
from reconciler.releasing import helm, pre_upgrading, preflight, targets

log = logging.getLogger("lumina.reconcile")


def _pod_checksums(
    box: toolboxes.Toolbox,
    seen: observing.Observation,
    resolved: secrets.ResolvedSecrets,
    key: bytes,
) -> dict[str, str]:
    """Per values key, the checksum of its Secrets for the pod template: a fresh one for
    a service whose Secrets rotated (or on a first install), else the one deployed — so
    an upgrade for other reasons never rolls a pod over its secrets."""
    assert seen.desired is not None
    rotated = set(
        secret_inputs.changed(seen.saved.secret_fingerprints, seen.desired.secret_fingerprints)
    )
    fresh = secrets.pod_checksums(box.plugins, resolved, key)
    if seen.release is None:
        return fresh
    deployed = targets.secret_checksums(box.plugins, seen.release)
    return secrets.kept_unless_rotated(box.plugins, fresh, deployed, rotated)


def _copy_backups(box: toolboxes.Toolbox, backups: Mapping[str, str]) -> tuple[str, ...]:
    """Copy the pre-upgrade backups to ``backup_copies_dir``; a copy that fails is said,
    and does not stop the upgrade (the backup on the volume is there)."""
    config = box.config
    if not config.backup_copies_dir or not backups:
        return ()
    directory = config.repo_path(config.backup_copies_dir)
    notes: list[str] = []
    for plugin in box.plugins:
        if plugin.name not in backups:
            continue
        name = backups[plugin.name].rpartition("/")[2]
        try:
            path = backup_copies.pull(box.deps.kube, config.namespace, plugin, name, directory)
        except errors.LuminaError as exc:
            log.warning("could not copy %s's backup %s here: %s", plugin.name, name, exc)
            notes.append(f"{plugin.name}: backup not copied to {directory} ({exc.message})")
            continue
        backup_copies.prune(directory, config.backup_copies_keep)
        notes.append(f"{plugin.name}: backup copied to {path}")
    return tuple(notes)


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    assert seen.desired is not None
    config = box.config
    wanted = seen.desired
    await asyncio.to_thread(build.ensure_room, box, building_images=False)
    # Reads and checks first: nothing reaches the cluster before the chart passed them.
    namespace = await asyncio.to_thread(
        namespaces.prepare,
        box.deps.kube,
        config.namespace,
        config.release,
        targets.node_port(box.plugins, config),
    )
    in_cluster = await asyncio.to_thread(
        secrets.read_generated, box.deps.kube, box.plugins, config.namespace
    )
    resolved = await asyncio.to_thread(
        secrets.resolve, box.plugins, config.repo_path(config.secrets_file), in_cluster=in_cluster
    )
    key, new_key = await asyncio.to_thread(secrets.checksum_key, box.deps.kube, config.namespace)
    values = targets.chart_values(
        box.plugins,
        wanted.tags,
        config,
        wanted.release_inputs,
        _pod_checksums(box, seen, resolved, key),
    )
    # Independent helm calls (one local, one reading the release): side by side.
    rendered, deployed_objects = await asyncio.gather(
        box.deps.releaser.render(values), box.deps.releaser.deployed_manifests()
    )
    problems = preflight.check(rendered, deployed_objects)
    if problems:
        raise helm.ChartError(
            "pre-flight checks refused the upgrade:\n  - " + "\n  - ".join(problems),
            hint="fix the chart; the running release is untouched",
        )
    release = seen.release
    deployed = release is not None and release.status == "deployed"
    # Writes: the namespace before anything that lives in it (a first install has none).
    if namespace.apply is not None:
        await asyncio.to_thread(box.deps.kube.apply, namespace.apply)
        log.info("%s", namespace.note)
    if new_key is not None:
        await asyncio.to_thread(box.deps.kube.apply, new_key)
    prepared = await asyncio.to_thread(
        pre_upgrading.run,
        box.deps.kube,
        box.plugins,
        config.namespace,
        restarting=pre_upgrading.restarting(rendered, deployed_objects),
        revision=release.revision if release is not None else None,
        values=values,
    )
    await asyncio.to_thread(secrets.apply, box.deps.kube, resolved, config.namespace)
    copied = await asyncio.to_thread(_copy_backups, box, prepared.backups)
    tried = await trying.try_new_pods(box, rendered, prepared) if config.trial_starts else ()
    changed = decision.services
    description = f"lumina: {', '.join(f'{n}={wanted.tags[n]}' for n in changed) or 'chart change'}"
    box.runtime.counters["helm_upgrades"] += 1
    # What to return to on failure: the live revision, or (a failed one lives) the last
    # one this tool saw ready.
    previous = release.revision if deployed and release is not None else seen.saved.revision
    if release is not None and seen.saved.revision is not None:
        # The last revision this tool saw serve, not merely Helm's latest: a revision
        # applied and never verified (a run stopped mid-remedy) may be the failed one.
        previous = min(seen.saved.revision, release.revision)
    expected = {
        plugin.values_key: wanted.images[plugin.name]
        for plugin in box.plugins
        if plugin.name in wanted.images
    }
    log.info("applying the release with helm (%s)", description)
    try:
        revision = await box.deps.releaser.apply(values, description)
    except helm.ReleaseError as exc:
        # Helm may have applied part of it and marked the revision failed: undo it.
        log.warning("helm could not apply the release: %s", exc)
        attempt = observing.Rollout(
            (release.revision if release else 0) + 1, previous, expected, applied_now=True
        )
        result = rollout.RolloutResult(rollout.Verdict.FAILED, 0.0, detail=str(exc))
        return dataclasses.replace(seen, failure=observing.Failure(attempt, result))
    log.info("revision %d applied (%s); watching the rollout", revision, description)
    # A value generated just now (a first install's JWT key) is part of what was
    # deployed: recorded with it, or the next cycle would take it for a rotation.
    given = await asyncio.to_thread(
        secret_inputs.fingerprints,
        box.plugins,
        config.repo_path(config.secrets_file),
        secret_inputs.fingerprint_key(box.state_dir),
    )
    return dataclasses.replace(
        seen,
        desired=dataclasses.replace(wanted, secret_fingerprints=given),
        pending_rollout=observing.Rollout(
            revision, previous, expected, applied_now=True, backups=prepared.backups
        ),
        applied=description.removeprefix("lumina: "),
        notes=(
            *seen.notes,
            *([namespace.note] if namespace.note else []),
            *prepared.notes,
            *copied,
            *tried,
        ),
    )
