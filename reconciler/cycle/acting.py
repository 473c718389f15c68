"""The side effects of a cycle's act phase: room on disk, builds and pushes, the watched
upgrade, the rollback that follows a failed rollout, post-deploy checks.

Who calls it: :mod:`reconciler.cycle.reconciling`, after it decided what to do. Each function
acts through the :class:`reconciler.cycle.toolboxes.Toolbox` and returns what happened.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import Any

from reconciler import errors, services
from reconciler.building import builds, disks, registries
from reconciler.cluster import rollout
from reconciler.cycle import toolboxes
from reconciler.inputs import contexts
from reconciler.releasing import targets

log = logging.getLogger("lumina.reconcile")


def ensure_room(box: toolboxes.Toolbox, *, building_images: bool) -> None:
    places = {"the state directory": box.state_dir}
    if building_images:
        places["the build-context spool (TMPDIR)"] = pathlib.Path(tempfile.gettempdir())
        data_root = builds.local_data_root(box.docker())
        if data_root is not None:
            places["the Docker engine's data root"] = data_root
    disks.ensure_room(places, box.config.min_free_disk_mb * 2**20)


async def ask_registry(
    box: toolboxes.Toolbox, references: Mapping[str, str], account: registries.Credentials | None
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


async def build_all(
    box: toolboxes.Toolbox,
    wanted: Sequence[tuple[services.ServicePlugin, contexts.ServiceInputs]],
    source: contexts.Source,
    *,
    account: registries.Credentials | None = None,
    pushed: list[str],
) -> list[builds.BuiltImage]:
    """Build each wanted image (reusing local ones) and, with a registry, push it as soon
    as it is built; ``pushed`` collects the services pushed."""
    docker = await asyncio.to_thread(box.docker)
    limit = asyncio.Semaphore(box.config.build_concurrency)

    async def one(
        plugin: services.ServicePlugin, inputs: contexts.ServiceInputs
    ) -> builds.BuiltImage:
        async with limit:
            image = targets.image_name(box.config, plugin)
            log.info("building %s:%s", image, inputs.tag)
            built = await builds.build(
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


async def upgrade_watching(
    box: toolboxes.Toolbox, values: dict[str, Any], expected: Mapping[str, str], description: str
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


async def ensure_rolled_back(
    box: toolboxes.Toolbox, previous_revision: int | None, deployments: Sequence[str]
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


def run_post_deploy_hooks(
    box: toolboxes.Toolbox, changed: Sequence[str], expected: Mapping[str, str]
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
