"""One reconcile cycle: observe the repository and the release, decide, act once.

Who calls it: the daemon (:mod:`reconciler.daemon.running`) for every batch of changes, and the
``once`` command. The shape follows Flux's helm-controller: observe (snapshot, release),
decide (what differs), then act — build only the images whose digest is not live, one
``helm upgrade`` with every service's tag, watch the rollout and roll back at the first
certain failure. Every outcome is a value (:class:`CycleResult`); nothing a user must
fix escapes as an exception, and nothing makes the cluster worse: a failed build, a
failed push or a rejected chart never reaches Helm, a failed rollout is rolled back.
With a registry in the settings, images reach the cluster by push and pull instead of
being loaded into its nodes, and the registry is asked first which digests it already
holds (those are neither built nor pushed).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from reconciler import errors, services
from reconciler.building import builds, registries
from reconciler.cluster import secrets
from reconciler.cycle import acting, outcomes, planning, state, toolboxes
from reconciler.inputs import contexts, snapshots, watching
from reconciler.releasing import drifting, helm, pre_upgrading, preflight, targets

log = logging.getLogger("lumina.reconcile")


def _conclude(
    box: toolboxes.Toolbox,
    saved: state.State,
    result: outcomes.CycleResult,
    *,
    failed_target: str | None = None,
) -> outcomes.CycleResult:
    """Record ``result``: history, the failed inputs (so they are not retried in a loop),
    state on disk, metrics."""
    if failed_target is not None:
        saved.last_failure = {
            "target": failed_target,
            "outcome": result.outcome.value,
            "message": result.message,
        }
    saved.history.append(result.to_json())
    state.save(box.state_dir, saved)
    box.metrics.cycles.labels(result.outcome.value).inc()
    return result


def _record_deployed(
    box: toolboxes.Toolbox,
    saved: state.State,
    snapshot: snapshots.Snapshot,
    revision: int,
    release_inputs: str,
) -> None:
    saved.services = {
        inputs.name: state.DeployedImage(inputs.digest, inputs.tag, box.image(inputs.name))
        for inputs in snapshot.services
    }
    saved.chart_digest, saved.revision = snapshot.chart_digest, revision
    saved.release_inputs = release_inputs
    for inputs in snapshot.services:
        state.save_manifest(box.state_dir, inputs.digest, inputs.files)
    state.save_manifest(box.state_dir, snapshot.chart_digest, snapshot.chart_files)


async def detect_drift(box: toolboxes.Toolbox) -> list[drifting.Drift]:
    """Hand-made changes to the release's objects (an empty list when there are none)."""
    box.counters["helm_reads"] += 1
    desired = await box.releaser.deployed_manifests()
    live: dict[tuple[str, str], dict[str, Any]] = {}
    for obj in desired:
        if obj.get("kind") == "Deployment":
            name = str(obj["metadata"]["name"])
            found = await asyncio.to_thread(
                box.kube.get, "apps/v1", "Deployment", box.config.namespace, name
            )
            if found is not None:
                live[("Deployment", name)] = found
    drifts = drifting.compare(desired, live, ignore=box.config.drift_ignore)
    for plugin in box.plugins:
        count = sum(1 for drift in drifts if drift.service == plugin.values_key)
        box.metrics.drifted.labels(plugin.name).set(count)
    return drifts


async def run_cycle(
    box: toolboxes.Toolbox, *, first: bool = False, force_upgrade: bool = False
) -> outcomes.CycleResult:
    """Observe, decide, act once.

    ``first`` forces a look at the live release; ``force_upgrade`` runs Helm even when
    nothing changed in the repository (to correct drift).
    """
    phases = toolboxes.Phases()
    config = box.config
    state_dir = box.state_dir
    saved = state.load(state_dir)
    key: str | None = None
    try:
        condition = watching.read_condition(config.repo, config.branch)
        if condition.pauses(config.mode):
            # Looked at again shortly: ending a merge or removing index.lock touches only
            # .git, which the work-tree watcher ignores.
            return outcomes.CycleResult(
                outcomes.Outcome.PAUSED, condition.message, phases=phases.seconds, retry_after=2.0
            )
        with phases.timed("plan"):
            source = snapshots.source_for(config, cache=box.hash_cache, memo=box.listings)
            snapshot = snapshots.take(config, box.plugins, source)
            box.hash_cache.save()
        target: dict[str, str] = {inputs.name: inputs.tag for inputs in snapshot.services}
        inputs_by_name: dict[str, contexts.ServiceInputs] = {i.name: i for i in snapshot.services}
        key = targets.target_key(target, snapshot.chart_digest, config.values, config.registry)
        release_inputs = targets.release_inputs(snapshot.chart_digest, config)
        plugins_by_name: dict[str, services.ServicePlugin] = {p.name: p for p in box.plugins}
        target_images = {
            name: f"{targets.image_name(config, plugins_by_name[name])}:{tag}"
            for name, tag in target.items()
        }
        live_from_state = {
            name: f"{image.image}:{image.tag}" for name, image in saved.services.items()
        }
        if (
            not first
            and not force_upgrade
            and saved.revision is not None
            and live_from_state == target_images
            and saved.release_inputs == release_inputs
        ):
            result = outcomes.CycleResult(
                outcomes.Outcome.NOTHING_TO_DO,
                "the cluster already runs this state",
                snapshot.label,
                phases=phases.seconds,
            )
            box.metrics.cycles.labels(result.outcome.value).inc()
            return result
        if not force_upgrade and saved.last_failure and saved.last_failure.get("target") == key:
            return outcomes.CycleResult(
                outcomes.Outcome.SKIPPED_KNOWN_FAILURE,
                f"these inputs already failed ({saved.last_failure.get('outcome')}): "
                f"{saved.last_failure.get('message')}; waiting for a change",
                snapshot.label,
                phases=phases.seconds,
            )

        with phases.timed("release"):
            box.counters["helm_reads"] += 1
            recovered = await box.releaser.recover()
            if recovered:
                log.warning("recovered release %s: %s", config.release, recovered)
            release = await box.releaser.current()
        live = targets.release_images(box.plugins, release)
        changed = sorted(name for name in target if live.get(name) != target_images[name])
        recorded = targets.recorded_inputs(release) or saved.release_inputs
        chart_changed = recorded != release_inputs
        release_ok = release is not None and release.status == "deployed"
        if (
            not force_upgrade
            and not changed
            and not chart_changed
            and release_ok
            and release is not None
        ):
            _record_deployed(box, saved, snapshot, release.revision, release_inputs)
            saved.last_failure = None
            # Recorded in the history: after a crash or a new clone, `status` must show
            # that the live release was found already converged.
            return _conclude(
                box,
                saved,
                outcomes.CycleResult(
                    outcomes.Outcome.NOTHING_TO_DO,
                    f"release revision {release.revision} already runs this state",
                    snapshot.label,
                    revision=release.revision,
                    phases=phases.seconds,
                ),
            )

        with phases.timed("secrets"):
            in_cluster = await asyncio.to_thread(
                secrets.read_generated, box.kube, box.plugins, config.namespace
            )
            resolved = secrets.resolve(
                box.plugins, config.repo_path(config.secrets_file), in_cluster=in_cluster
            )

        account = (
            registries.credentials(config.repo_path(config.secrets_file))
            if config.registry
            else None
        )
        with phases.timed("registry"):
            present = await acting.ask_registry(
                box, {name: target_images[name] for name in changed}, account
            )
        delivery = planning.deliveries(changed, present)
        wanted = [(plugins_by_name[name], inputs_by_name[name]) for name in delivery.build]
        pushed: list[str] = []
        with phases.timed("disk"):
            await asyncio.to_thread(acting.ensure_room, box, building_images=bool(wanted))
        with phases.timed("build"):
            built = await acting.build_all(box, wanted, source, account=account, pushed=pushed)
        box.metrics.builds_skipped.inc(len(target) - len([b for b in built if not b.reused]))
        if not config.registry:
            # Without a registry the nodes cannot pull: the provider copies images in.
            with phases.timed("load"):
                fresh = [image.reference for image in built]
                if fresh:
                    await asyncio.to_thread(box.provider.load_images, fresh)

        values = targets.chart_values(box.plugins, target, config, release_inputs)
        with phases.timed("preflight"):
            rendered = await box.releaser.render(values)
            deployed_objects = await box.releaser.deployed_manifests()
            problems = preflight.check(rendered, deployed_objects)
        if problems:
            raise helm.ChartError(
                "pre-flight checks refused the upgrade:\n  - " + "\n  - ".join(problems),
                hint="fix the chart; the running release is untouched",
            )
        with phases.timed("pre-upgrade"):
            # Before anything changes: a failed hook leaves the release as it runs.
            prepared = await asyncio.to_thread(
                pre_upgrading.run,
                box.kube,
                box.plugins,
                config.namespace,
                restarting=pre_upgrading.restarting(rendered, deployed_objects),
                revision=release.revision if release is not None else None,
                values=values,
            )
        with phases.timed("apply-secrets"):
            await asyncio.to_thread(box.kube.apply, secrets.namespace_manifest(config.namespace))
            await asyncio.to_thread(secrets.apply, box.kube, resolved, config.namespace)

        # Pods are found by their name label, which the chart sets to the values key.
        expected: dict[str, str] = {}
        for name in changed:
            values_key = plugins_by_name[name].values_key
            expected[values_key] = f"{values[values_key]['image']['repository']}:{target[name]}"
        description = f"lumina: {', '.join(f'{n}={target[n]}' for n in changed) or 'chart change'}"
        previous_revision = release.revision if release_ok and release is not None else None
        with phases.timed("deploy"):
            revision, diagnosis, failure = await acting.upgrade_watching(
                box, values, expected, description
            )
        box.metrics.deploy_seconds.observe(phases.seconds["deploy"])
        if revision is None:
            with phases.timed("rollback"):
                undone = await acting.ensure_rolled_back(box, previous_revision, list(expected))
            result = outcomes.CycleResult(
                outcomes.Outcome.ROLLED_BACK,
                f"rollout failed: {failure}; {undone}",
                snapshot.label,
                tuple(b.service for b in built if not b.reused),
                tuple(b.service for b in built if b.reused),
                previous_revision,
                diagnosis,
                phases.seconds,
                pushed=tuple(sorted(pushed)),
                in_registry=delivery.in_registry,
            )
            return _conclude(box, saved, result, failed_target=key)

        hook_problems = acting.run_post_deploy_hooks(box, changed, expected)
        _record_deployed(box, saved, snapshot, revision, release_inputs)
        saved.last_failure = None
        result = outcomes.CycleResult(
            outcomes.Outcome.CONVERGED,
            "; ".join(
                [
                    f"revision {revision}: {description.removeprefix('lumina: ')}",
                    *prepared,
                    *hook_problems,
                ]
            ),
            snapshot.label,
            tuple(b.service for b in built if not b.reused),
            tuple(b.service for b in built if b.reused),
            revision,
            None,
            phases.seconds,
            pushed=tuple(sorted(pushed)),
            in_registry=delivery.in_registry,
        )
        box.metrics.last_success.set_to_current_time()
        return _conclude(box, saved, result)
    except registries.RegistryError as exc:
        # Like a failed build: the release is untouched. Not remembered as a failure of
        # these inputs, though: the fix (a registry back up) is outside the repository.
        log.warning("registry problem, will retry in %.0fs: %s", exc.retry_after, exc)
        result = outcomes.CycleResult(
            outcomes.Outcome.PUSH_FAILED,
            str(exc),
            phases=phases.seconds,
            retry_after=exc.retry_after,
        )
        return _conclude(box, saved, result)
    except errors.TemporaryError as exc:
        log.warning("temporary problem, will retry in %.0fs: %s", exc.retry_after, exc)
        box.metrics.cycles.labels(outcomes.Outcome.RETRY.value).inc()
        return outcomes.CycleResult(
            outcomes.Outcome.RETRY, str(exc), phases=phases.seconds, retry_after=exc.retry_after
        )
    except errors.PermanentError as exc:
        outcome = (
            outcomes.Outcome.BUILD_FAILED
            if isinstance(exc, builds.BuildError)
            else outcomes.Outcome.CHART_REJECTED
            if isinstance(exc, helm.ChartError)
            else outcomes.Outcome.BLOCKED
        )
        result = outcomes.CycleResult(outcome, str(exc), phases=phases.seconds)
        return _conclude(
            box, saved, result, failed_target=None if outcome is outcomes.Outcome.BLOCKED else key
        )
