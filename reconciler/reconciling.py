"""One reconcile cycle: observe the repository and the release, decide, act once.

Who calls it: the daemon (:mod:`reconciler.running`) for every batch of changes, and the
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
import contextlib
import dataclasses
import enum
import hashlib
import json
import logging
import pathlib
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reconciler import (
    building,
    contexts,
    disks,
    drifting,
    errors,
    kube,
    metrics,
    planning,
    pre_upgrading,
    preflight,
    providers,
    registries,
    releasing,
    rollout,
    secrets,
    services,
    settings,
    snapshots,
    state,
    watching,
    worktree_reading,
)

log = logging.getLogger("lumina.reconcile")


class Outcome(enum.StrEnum):
    CONVERGED = "converged"
    NOTHING_TO_DO = "nothing-to-do"
    BUILD_FAILED = "build-failed"
    PUSH_FAILED = "push-failed"
    CHART_REJECTED = "chart-rejected"
    ROLLED_BACK = "rolled-back"
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
        }


@dataclasses.dataclass
class Toolbox:
    """The adapters a cycle acts through; tests and commands build it once."""

    config: settings.Settings
    plugins: Sequence[services.ServicePlugin]
    provider: providers.ClusterProvider
    cluster: providers.ClusterInfo
    kube: kube.Kube
    releaser: releasing.Releaser
    metrics: metrics.Metrics
    hash_cache: worktree_reading.HashCache
    #: set by the daemon, whose watcher keeps it correct; one-shot commands walk the tree
    listings: worktree_reading.ListingMemo | None = None
    build_log: Callable[[str, str], None] = lambda service, line: log.info("[%s] %s", service, line)
    docker_client: Any = None
    counters: dict[str, int] = dataclasses.field(
        default_factory=lambda: {
            "docker_builds": 0,
            "docker_pushes": 0,
            "helm_upgrades": 0,
            "helm_reads": 0,
        }
    )

    @property
    def state_dir(self) -> pathlib.Path:
        return self.config.repo_path(self.config.state_dir)

    def docker(self) -> Any:
        if self.docker_client is None:
            self.docker_client = building.connect(self.provider.docker_env())
        return self.docker_client


class _Phases:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(self, name: str) -> Any:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started


def _merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _release_inputs(chart_digest: str, config: settings.Settings) -> str:
    """Digest of everything besides images that shapes the release: chart and values."""
    values = json.dumps(config.values, sort_keys=True, default=str)
    return hashlib.sha256(f"{chart_digest}\0{values}".encode()).hexdigest()[:32]


def _values(
    plugins: Sequence[services.ServicePlugin],
    tags: Mapping[str, str],
    config: settings.Settings,
    release_inputs: str = "",
) -> dict[str, Any]:
    """Chart values: the settings' extra values, every service's image, and the release's
    own record of its inputs (under ``global``, which every subchart accepts), so a fresh
    clone or a restarted daemon can tell from the release alone what it runs."""
    images: dict[str, Any] = {"global": {"lumina": {"inputs": release_inputs}}}
    for plugin in plugins:
        images[plugin.values_key] = {
            "image": {
                "repository": box_image_name(config, plugin),
                "tag": tags[plugin.name],
                "pullPolicy": "IfNotPresent",
            }
        }
    return _merged(config.values, images)


def _release_images(
    plugins: Sequence[services.ServicePlugin], release: releasing.ReleaseState | None
) -> dict[str, str]:
    """Per service, the ``repository:tag`` the release runs: the repository counts too,
    since setting (or dropping) a registry moves every image without changing a tag."""
    if release is None:
        return {}
    found: dict[str, str] = {}
    for plugin in plugins:
        image = (release.values.get(plugin.values_key) or {}).get("image") or {}
        if image.get("tag"):
            found[plugin.name] = f"{image.get('repository', '')}:{image['tag']}"
    return found


def _release_recorded_inputs(release: releasing.ReleaseState | None) -> str | None:
    if release is None:
        return None
    recorded = ((release.values.get("global") or {}).get("lumina") or {}).get("inputs")
    return str(recorded) if recorded else None


def _target_key(
    tags: Mapping[str, str],
    chart_digest: str,
    values: Mapping[str, Any],
    registry: str | None = None,
) -> str:
    # The settings' extra chart values are inputs too: fixing values the schema rejected
    # must be tried, not skipped as the same failure. So is the registry images come from.
    extra = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()
    return (
        ",".join(f"{name}={tag}" for name, tag in sorted(tags.items()))
        + f";chart={chart_digest[:20]};values={extra[:12]}"
        + (f";registry={registry}" if registry else "")
    )


def _ensure_room(box: Toolbox, *, building_images: bool) -> None:
    places = {"the state directory": box.state_dir}
    if building_images:
        places["the build-context spool (TMPDIR)"] = pathlib.Path(tempfile.gettempdir())
        data_root = building.local_data_root(box.docker())
        if data_root is not None:
            places["the Docker engine's data root"] = data_root
    disks.ensure_room(places, box.config.min_free_disk_mb * 2**20)


async def _ask_registry(
    box: Toolbox, references: Mapping[str, str], account: registries.Credentials | None
) -> dict[str, bool]:
    """The registry's answer, per service, to "do you hold this reference?"."""
    if not box.config.registry or not references:
        return {}
    docker = await asyncio.to_thread(box.docker)
    answers = await asyncio.gather(
        *(
            asyncio.to_thread(registries.has, docker, reference, account)
            for reference in references.values()
        )
    )
    for reference, present in zip(references.values(), answers, strict=True):
        log.info("registry %s %s", "has" if present else "lacks", reference)
    return dict(zip(references, answers, strict=True))


async def _build_all(
    box: Toolbox,
    wanted: Sequence[tuple[services.ServicePlugin, contexts.ServiceInputs]],
    source: contexts.Source,
    *,
    account: registries.Credentials | None = None,
    pushed: list[str],
) -> list[building.BuiltImage]:
    """Build each wanted image (reusing local ones) and, with a registry, push it as soon
    as it is built; ``pushed`` collects the services pushed."""
    docker = await asyncio.to_thread(box.docker)
    limit = asyncio.Semaphore(box.config.build_concurrency)

    async def one(
        plugin: services.ServicePlugin, inputs: contexts.ServiceInputs
    ) -> building.BuiltImage:
        async with limit:
            image = box_image_name(box.config, plugin)
            log.info("building %s:%s", image, inputs.tag)
            built = await building.build(
                docker,
                plugin,
                inputs,
                source,
                log=box.build_log,
                timeout=box.config.build_timeout_seconds,
                image=image,
            )
            if not built.reused:
                box.counters["docker_builds"] += 1
                box.metrics.build_seconds.labels(plugin.name).observe(built.seconds)
                box.metrics.services_rebuilt.labels(plugin.name).inc()
            log.info(
                "%s %s%s",
                "reused" if built.reused else "built",
                built.reference,
                "" if built.reused else f" in {built.seconds:.1f}s",
            )
        if box.config.registry:
            # Outside the build slot: a push waits on the network, not the CPU.
            log.info("pushing %s", built.reference)
            digest = await asyncio.to_thread(
                registries.push, docker, plugin.name, built.reference, account, box.build_log
            )
            box.counters["docker_pushes"] += 1
            pushed.append(plugin.name)
            log.info("pushed %s (%s)", built.reference, digest)
        return built

    tasks = [
        asyncio.create_task(one(plugin, inputs), name=f"build-{plugin.name}")
        for plugin, inputs in wanted
    ]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _upgrade_watching(
    box: Toolbox, values: dict[str, Any], expected: Mapping[str, str], description: str
) -> tuple[int | None, rollout.Diagnosis | None, str]:
    """Run the upgrade while watching the changed pods; stop at the first certain failure."""
    upgrade = asyncio.create_task(box.releaser.upgrade(values, description), name="helm-upgrade")
    seen_errors: set[str] = set()

    def watch_error(exc: Exception) -> None:
        # The API may blink during an upgrade; say so once per distinct problem.
        if str(exc) not in seen_errors:
            seen_errors.add(str(exc))
            log.warning("rollout watch: %s (still waiting on helm)", exc)

    watcher = asyncio.create_task(
        rollout.watch(box.kube, box.config.namespace, expected, on_error=watch_error),
        name="rollout-watch",
    )
    box.counters["helm_upgrades"] += 1
    try:
        done, _pending = await asyncio.wait({upgrade, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        upgrade.cancel()
        watcher.cancel()
        await asyncio.gather(upgrade, watcher, return_exceptions=True)
        raise
    if upgrade in done:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        try:
            return upgrade.result(), None, ""
        except errors.LuminaError as exc:
            # Helm gave up (timeout or apply error); --atomic has rolled back already.
            found = None
            for service, image in expected.items():
                found = await asyncio.to_thread(
                    rollout.inspect, box.kube, box.config.namespace, service, image=image
                )
                if found:
                    break
            return None, found, str(exc)
    diagnosis = watcher.result()
    log.warning("rollout failed fast: %s — stopping helm and rolling back", diagnosis.summary)
    upgrade.cancel()
    await asyncio.gather(upgrade, return_exceptions=True)
    return None, diagnosis, diagnosis.summary


async def _ensure_rolled_back(
    box: Toolbox, previous_revision: int | None, deployments: Sequence[str]
) -> str:
    """After an abandoned upgrade: leave the release deployed at its last good revision,
    and its pods serving again (a Recreate Deployment has none while it rolls back)."""
    recovered = await box.releaser.recover()
    current = await box.releaser.current()
    if current is None:
        return recovered or "the release was never installed"
    if current.status != "deployed" and previous_revision is not None:
        revision = await box.releaser.rollback(previous_revision)
        said = f"rolled back to revision {previous_revision} (now revision {revision})"
    else:
        said = recovered or f"release at revision {current.revision} ({current.status})"
    deadline = time.monotonic() + box.config.helm_timeout_seconds
    waiting = list(deployments)
    while waiting and time.monotonic() < deadline:
        found = await asyncio.to_thread(
            box.kube.get, "apps/v1", "Deployment", box.config.namespace, waiting[0]
        )
        containers = (found or {}).get("spec", {}).get("template", {}).get("spec", {})
        image = (containers.get("containers") or [{}])[0].get("image", "")
        if found is None or rollout.deployment_ready(found, image):
            waiting.pop(0)
        else:
            await asyncio.sleep(1)
    if waiting:
        said += f"; {', '.join(waiting)} not ready again yet"
    return said


def _conclude(
    box: Toolbox, saved: state.State, result: CycleResult, *, failed_target: str | None = None
) -> CycleResult:
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
    box: Toolbox,
    saved: state.State,
    snapshot: snapshots.Snapshot,
    revision: int,
    release_inputs: str,
) -> None:
    saved.services = {
        inputs.name: state.DeployedImage(inputs.digest, inputs.tag, box_image(box, inputs.name))
        for inputs in snapshot.services
    }
    saved.chart_digest, saved.revision = snapshot.chart_digest, revision
    saved.release_inputs = release_inputs
    for inputs in snapshot.services:
        state.save_manifest(box.state_dir, inputs.digest, inputs.files)
    state.save_manifest(box.state_dir, snapshot.chart_digest, snapshot.chart_files)


def _run_post_deploy_hooks(
    box: Toolbox, changed: Sequence[str], expected: Mapping[str, str]
) -> list[str]:
    """Run the changed services' smoke checks; returns what failed, in words."""
    problems = []
    for plugin in box.plugins:
        if plugin.name not in changed or plugin.post_deploy is None:
            continue
        image = expected[plugin.values_key]
        try:
            plugin.post_deploy(services.DeployedService(plugin.name, image, box.config.namespace))
        except Exception as exc:  # a plugin's check may raise anything
            problems.append(f"post-deploy check of {plugin.name} failed: {exc}")
            log.warning("%s", problems[-1])
    return problems


async def detect_drift(box: Toolbox) -> list[drifting.Drift]:
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
    box: Toolbox, *, first: bool = False, force_upgrade: bool = False
) -> CycleResult:
    """Observe, decide, act once.

    ``first`` forces a look at the live release; ``force_upgrade`` runs Helm even when
    nothing changed in the repository (to correct drift).
    """
    phases = _Phases()
    config = box.config
    state_dir = box.state_dir
    saved = state.load(state_dir)
    key: str | None = None
    try:
        condition = watching.read_condition(config.repo, config.branch)
        if condition.pauses(config.mode):
            # Looked at again shortly: ending a merge or removing index.lock touches only
            # .git, which the work-tree watcher ignores.
            return CycleResult(
                Outcome.PAUSED, condition.message, phases=phases.seconds, retry_after=2.0
            )
        with phases.timed("plan"):
            source = snapshots.source_for(config, cache=box.hash_cache, memo=box.listings)
            snapshot = snapshots.take(config, box.plugins, source)
            box.hash_cache.save()
        target: dict[str, str] = {inputs.name: inputs.tag for inputs in snapshot.services}
        inputs_by_name: dict[str, contexts.ServiceInputs] = {i.name: i for i in snapshot.services}
        key = _target_key(target, snapshot.chart_digest, config.values, config.registry)
        release_inputs = _release_inputs(snapshot.chart_digest, config)
        plugins_by_name: dict[str, services.ServicePlugin] = {p.name: p for p in box.plugins}
        target_images = {
            name: f"{box_image_name(config, plugins_by_name[name])}:{tag}"
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
            result = CycleResult(
                Outcome.NOTHING_TO_DO,
                "the cluster already runs this state",
                snapshot.label,
                phases=phases.seconds,
            )
            box.metrics.cycles.labels(result.outcome.value).inc()
            return result
        if not force_upgrade and saved.last_failure and saved.last_failure.get("target") == key:
            return CycleResult(
                Outcome.SKIPPED_KNOWN_FAILURE,
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
        live = _release_images(box.plugins, release)
        changed = sorted(name for name in target if live.get(name) != target_images[name])
        recorded = _release_recorded_inputs(release) or saved.release_inputs
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
                CycleResult(
                    Outcome.NOTHING_TO_DO,
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
            present = await _ask_registry(
                box, {name: target_images[name] for name in changed}, account
            )
        delivery = planning.deliveries(changed, present)
        wanted = [(plugins_by_name[name], inputs_by_name[name]) for name in delivery.build]
        pushed: list[str] = []
        with phases.timed("disk"):
            await asyncio.to_thread(_ensure_room, box, building_images=bool(wanted))
        with phases.timed("build"):
            built = await _build_all(box, wanted, source, account=account, pushed=pushed)
        box.metrics.builds_skipped.inc(len(target) - len([b for b in built if not b.reused]))
        if not config.registry:
            # Without a registry the nodes cannot pull: the provider copies images in.
            with phases.timed("load"):
                fresh = [image.reference for image in built]
                if fresh:
                    await asyncio.to_thread(box.provider.load_images, fresh)

        values = _values(box.plugins, target, config, release_inputs)
        with phases.timed("preflight"):
            rendered = await box.releaser.render(values)
            deployed_objects = await box.releaser.deployed_manifests()
            problems = preflight.check(rendered, deployed_objects)
        if problems:
            raise releasing.ChartError(
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
            revision, diagnosis, failure = await _upgrade_watching(
                box, values, expected, description
            )
        box.metrics.deploy_seconds.observe(phases.seconds["deploy"])
        if revision is None:
            with phases.timed("rollback"):
                undone = await _ensure_rolled_back(box, previous_revision, list(expected))
            result = CycleResult(
                Outcome.ROLLED_BACK,
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

        hook_problems = _run_post_deploy_hooks(box, changed, expected)
        _record_deployed(box, saved, snapshot, revision, release_inputs)
        saved.last_failure = None
        result = CycleResult(
            Outcome.CONVERGED,
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
        result = CycleResult(
            Outcome.PUSH_FAILED, str(exc), phases=phases.seconds, retry_after=exc.retry_after
        )
        return _conclude(box, saved, result)
    except errors.TemporaryError as exc:
        log.warning("temporary problem, will retry in %.0fs: %s", exc.retry_after, exc)
        box.metrics.cycles.labels(Outcome.RETRY.value).inc()
        return CycleResult(
            Outcome.RETRY, str(exc), phases=phases.seconds, retry_after=exc.retry_after
        )
    except errors.PermanentError as exc:
        outcome = (
            Outcome.BUILD_FAILED
            if isinstance(exc, building.BuildError)
            else Outcome.CHART_REJECTED
            if isinstance(exc, releasing.ChartError)
            else Outcome.BLOCKED
        )
        result = CycleResult(outcome, str(exc), phases=phases.seconds)
        return _conclude(
            box, saved, result, failed_target=None if outcome is Outcome.BLOCKED else key
        )


def box_image_name(config: settings.Settings, plugin: services.ServicePlugin) -> str:
    """Where the image lives: the plugin's name locally, or under the registry."""
    return registries.repository(config.registry, plugin.name) if config.registry else plugin.image


def box_image(box: Toolbox, name: str) -> str:
    plugin = next(plugin for plugin in box.plugins if plugin.name == name)
    return box_image_name(box.config, plugin)
