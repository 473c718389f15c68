"""Build: the images a plan needs that exist nowhere yet; with a registry, push each one.

Who calls it: the cycle, in state ``images-missing``. Builds run in parallel up to
``build_concurrency``; an image already in the local engine is reused, not rebuilt; a
push starts as soon as its build is done (outside the build slot, since it waits on
the network). Disk room is checked first: a full disk fails here, naming the place.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
import tempfile
from collections.abc import Sequence

from reconciler import services
from reconciler.building import builds, disks
from reconciler.cycle import deciding, observing, toolboxes
from reconciler.inputs import contexts, snapshots
from reconciler.releasing import targets

log = logging.getLogger("lumina.reconcile")


def ensure_room(box: toolboxes.Toolbox, *, building_images: bool) -> None:
    places = {"the state directory": box.state_dir}
    if building_images:
        places["the build-context spool (TMPDIR)"] = pathlib.Path(tempfile.gettempdir())
        data_root = box.deps.images.data_root()
        if data_root is not None:
            places["the Docker engine's data root"] = data_root
    disks.ensure_room(places, box.config.min_free_disk_mb * 2**20)


async def build_all(
    box: toolboxes.Toolbox,
    wanted: Sequence[tuple[services.ServicePlugin, contexts.ServiceInputs]],
    source: contexts.Source,
    *,
    pushed: list[str],
) -> list[builds.BuiltImage]:
    """Build each wanted image (reusing local ones) and, with a registry, push it as soon
    as it is built; ``pushed`` collects the services pushed."""
    limit = asyncio.Semaphore(box.config.build_concurrency)

    async def one(
        plugin: services.ServicePlugin, inputs: contexts.ServiceInputs
    ) -> builds.BuiltImage:
        async with limit:
            image = targets.image_name(box.config, plugin)
            log.info("building %s:%s", image, inputs.tag)
            built = await box.deps.images.build(
                plugin, inputs, source, image=image, log=box.build_log
            )
            if not built.reused:
                box.runtime.counters["docker_builds"] += 1
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
                box.deps.images.push, plugin.name, built.reference, box.build_log
            )
            box.runtime.counters["docker_pushes"] += 1
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


async def run(
    box: toolboxes.Toolbox, seen: observing.Observation, decision: deciding.Decision
) -> observing.Observation:
    assert seen.desired is not None
    await asyncio.to_thread(ensure_room, box, building_images=True)
    by_name: dict[str, services.ServicePlugin] = {plugin.name: plugin for plugin in box.plugins}
    inputs: dict[str, contexts.ServiceInputs] = {i.name: i for i in seen.desired.snapshot.services}
    wanted = [(by_name[name], inputs[name]) for name in decision.services]
    source = snapshots.source_for(box.config, cache=box.hash_cache, memo=box.runtime.listings)
    pushed: list[str] = []
    built = await build_all(box, wanted, source, pushed=pushed)
    box.metrics.builds_skipped.inc(len(seen.desired.tags) - sum(not b.reused for b in built))
    done = frozenset(image.service for image in built)
    return dataclasses.replace(
        seen,
        built=seen.built | done,
        delivered=seen.delivered | frozenset(pushed),
        built_now=(*seen.built_now, *(b.service for b in built if not b.reused)),
        reused=(*seen.reused, *(b.service for b in built if b.reused)),
        pushed=(*seen.pushed, *sorted(pushed)),
    )
