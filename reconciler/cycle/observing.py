"""Observe: everything a cycle decides on, read once — repository, state, release, images.

Who calls it: :mod:`reconciler.cycle.reconciling` at the start of every cycle, and the
``plan`` command (which reads no release and asks no engine: it shows what the daemon
would decide from its saved state). The result is plain data (:class:`Observation`);
the actions return a new one with what they established, so :func:`deciding.decide`
can stay pure and is asked again after each action.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from reconciler import services, settings
from reconciler.cycle import planning, state
from reconciler.inputs import secret_inputs, snapshots, watching, worktree_reading
from reconciler.releasing import targets

if TYPE_CHECKING:
    # Only the cycle's observe() talks to helm; `plan` imports this module and must
    # start without loading its client (see reconciler.cli.main).
    from reconciler.cluster import rollout
    from reconciler.cycle import toolboxes
    from reconciler.releasing import helm

log = logging.getLogger("lumina.reconcile")


@dataclasses.dataclass(frozen=True)
class Request:
    """Why the cycle runs: ``first`` looks at the live release even when the saved state
    says it is in sync; ``force_upgrade`` runs Helm although nothing changed (drift)."""

    first: bool = False
    force_upgrade: bool = False


@dataclasses.dataclass(frozen=True)
class Desired:
    """What the repository and settings say the cluster should run."""

    snapshot: snapshots.Snapshot
    tags: Mapping[str, str]
    #: per service ``repository:tag``
    images: Mapping[str, str]
    release_inputs: str
    #: identifies these inputs, so a failure of exactly them is not retried in a loop
    key: str
    #: per Secret name, the fingerprint of its local values (changes when one rotates)
    secret_fingerprints: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Rollout:
    """A release Helm applied whose pods are not yet known to be ready."""

    revision: int
    #: the revision to return to if it fails (None: nothing earlier was deployed)
    previous_revision: int | None
    #: Deployment name -> the image its pods must run
    expected: Mapping[str, str]
    #: applied by this cycle (not found applied by an earlier, interrupted one)
    applied_now: bool
    #: service name -> the backup its pre-upgrade hook made (restored if a failed new
    #: pod left the data at a schema the previous image does not know)
    backups: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Failure:
    """A rollout that failed, to be remedied."""

    attempt: Rollout
    result: rollout.RolloutResult


@dataclasses.dataclass(frozen=True)
class Observation:
    request: Request
    #: why the repository's git state pauses this mode, or ""
    paused: str
    desired: Desired | None
    saved: state.State
    #: what was wrong with the state file ("" when nothing)
    state_problem: str
    #: the live release, when it was read (``release_read``)
    release: helm.ReleaseState | None
    release_read: bool
    #: what is deployed: the release's images and inputs, or the saved state's
    baseline: planning.Baseline
    #: PIDs of helm processes still writing the release (left by a killed run)
    helm_writers: tuple[int, ...] = ()
    #: services whose wanted image exists where the next step needs it: in the local
    #: engine, or (with a registry) in the registry
    built: frozenset[str] = frozenset()
    #: services whose wanted image the cluster can run without a delivery
    delivered: frozenset[str] = frozenset()
    #: services delivered again in this cycle because the node had lost their image
    redelivered: frozenset[str] = frozenset()
    #: what the actions of this cycle established
    pending_rollout: Rollout | None = None
    failure: Failure | None = None
    rolled_back: str = ""
    #: how the last rollout wait of this cycle ended
    rollout_result: rollout.RolloutResult | None = None
    #: the revision whose pods this cycle saw ready
    verified_revision: int | None = None
    #: the revision this cycle applied and verified (a convergence, not a no-op)
    converged_revision: int | None = None
    built_now: tuple[str, ...] = ()
    reused: tuple[str, ...] = ()
    pushed: tuple[str, ...] = ()
    in_registry: tuple[str, ...] = ()
    #: what the upgrade of this cycle applied, in words ("backend=3f9a…")
    applied: str = ""
    #: said in the cycle's message (a backup taken, a recovery, a hook's complaint)
    notes: tuple[str, ...] = ()

    def plan(self) -> planning.Plan | None:
        """The per-service plan against what is deployed (None while paused)."""
        if self.desired is None:
            return None
        wanted = planning.Wanted(self.desired.images, self.desired.release_inputs)
        return planning.plan_snapshot(self.desired.snapshot, self.baseline, wanted)

    def with_release(
        self, release: helm.ReleaseState, images: Mapping[str, str], release_inputs: str
    ) -> Observation:
        """This observation after the release became ``release``, running ``images``."""
        return dataclasses.replace(
            self,
            release=release,
            release_read=True,
            baseline=dataclasses.replace(
                self.baseline,
                label=f"release revision {release.revision}",
                images=dict(images),
                release_inputs=release_inputs,
            ),
        )


def deployed_baseline(
    sources: Sources, saved: state.State, release: helm.ReleaseState | None, read: bool
) -> planning.Baseline:
    """What is deployed, as a planning baseline: the release when it was read, else the
    saved state (which a cycle wrote after verifying that release). The saved file
    listings name the paths that changed."""
    files = state.baseline(sources.state_dir, saved)
    if read:
        images = targets.release_images(sources.plugins, release)
        inputs = targets.recorded_inputs(release) or (saved.release_inputs if release else None)
        label = f"release revision {release.revision}" if release else "nothing deployed yet"
    else:
        images = {name: f"{image.image}:{image.tag}" for name, image in saved.services.items()}
        inputs = saved.release_inputs
        label = files.label
    return dataclasses.replace(files, label=label, images=images, release_inputs=inputs or "")


@dataclasses.dataclass(frozen=True)
class Sources:
    """What observing reads from besides the cluster: settings, plugins, the work tree's
    caches and the state directory."""

    config: settings.Settings
    plugins: Sequence[services.ServicePlugin]
    hash_cache: worktree_reading.HashCache
    listings: worktree_reading.ListingMemo | None = None

    @property
    def state_dir(self) -> pathlib.Path:
        return self.config.repo_path(self.config.state_dir)

    @classmethod
    def of(cls, box: toolboxes.Toolbox) -> Sources:
        return cls(box.config, box.plugins, box.hash_cache, box.runtime.listings)


def desired(sources: Sources) -> Desired:
    """The snapshot of the repository (per the mode) and the images it asks for."""
    config = sources.config
    source = snapshots.source_for(config, cache=sources.hash_cache, memo=sources.listings)
    snapshot = snapshots.take(config, sources.plugins, source)
    sources.hash_cache.save()
    tags: dict[str, str] = {inputs.name: inputs.tag for inputs in snapshot.services}
    names: dict[str, str] = {p.name: targets.image_name(config, p) for p in sources.plugins}
    images: dict[str, str] = {name: f"{names[name]}:{tag}" for name, tag in tags.items()}
    fingerprints = secret_inputs.fingerprints(
        sources.plugins,
        config.repo_path(config.secrets_file),
        secret_inputs.fingerprint_key(sources.state_dir),
    )
    extra = targets.extra_values(sources.plugins, config)
    key = targets.target_key(tags, snapshot.chart_digest, extra, config.registry)
    return Desired(
        snapshot,
        tags,
        images,
        targets.release_inputs(snapshot.chart_digest, config, sources.plugins),
        # A rotated secret is another attempt, not the failure of the same inputs.
        key + ";secrets=" + secret_inputs.digest(b"", fingerprints)[:12],
        fingerprints,
    )


def _saved_matches(saved: state.State, wanted: Desired) -> bool:
    live = {name: f"{image.image}:{image.tag}" for name, image in saved.services.items()}
    return (
        saved.revision is not None
        and live == dict(wanted.images)
        and saved.release_inputs == wanted.release_inputs
        and saved.secret_fingerprints == dict(wanted.secret_fingerprints)
    )


async def _images_present(
    box: toolboxes.Toolbox, wanted: Desired, services: list[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """(built, delivered) among ``services``: with a registry, what the registry holds
    is both; without one, what the local engine holds is built, and nothing is
    delivered until loaded into the nodes."""
    if not services:
        return frozenset(), frozenset()
    answers = await asyncio.gather(
        *(asyncio.to_thread(box.deps.images.exists, wanted.images[name]) for name in services)
    )
    held = frozenset(name for name, present in zip(services, answers, strict=True) if present)
    for name, present in zip(services, answers, strict=True):
        if box.config.registry:
            log.info("registry %s %s", "has" if present else "lacks", wanted.images[name])
        elif present:
            log.info("reused %s (already in the engine)", wanted.images[name])
    return (held, held) if box.config.registry else (held, frozenset())


def _running(baseline: planning.Baseline, wanted: Desired) -> frozenset[str]:
    """Services whose wanted image is the one deployed: built and delivered already."""
    live = baseline.images or {}
    return frozenset(name for name, image in live.items() if wanted.images.get(name) == image)


def _repository(sources: Sources, request: Request, loaded: state.Loaded) -> Observation:
    """The repository side: git's condition, the wanted inputs, the saved state as the
    baseline. The release, when read, is laid over it by :func:`observe`."""
    config = sources.config
    condition = watching.read_condition(config.repo, config.branch)
    baseline = deployed_baseline(sources, loaded.state, None, False)
    common = (loaded.state, loaded.problem, None, False, baseline)
    if condition.pauses(config.mode):
        return Observation(request, condition.message, None, *common)
    wanted = desired(sources)
    running = _running(baseline, wanted)
    return Observation(request, "", wanted, *common, built=running, delivered=running)


async def observe(box: toolboxes.Toolbox, request: Request) -> Observation:
    """Read the world once. A damaged state file is set aside, not raised."""
    from reconciler.releasing import helm  # noqa: PLC0415 — see the imports

    loaded = await asyncio.to_thread(box.deps.store.load, set_aside=True)
    if loaded.problem:
        log.warning("%s", loaded.problem)
    sources = Sources.of(box)
    seen = await asyncio.to_thread(_repository, sources, request, loaded)
    if seen.desired is None:
        return seen
    wanted = seen.desired
    if request.first or request.force_upgrade or not _saved_matches(seen.saved, wanted):
        box.runtime.counters["helm_reads"] += 1
        release = await box.deps.releaser.current()
        writers: tuple[int, ...] = ()
        if release is not None and release.status in helm.PENDING_NAMES:
            writers = tuple(
                await asyncio.to_thread(helm.helm_writers, box.config.release, box.config.namespace)
            )
        baseline = await asyncio.to_thread(deployed_baseline, sources, seen.saved, release, True)
        seen = dataclasses.replace(
            seen, release=release, release_read=True, baseline=baseline, helm_writers=writers
        )
    plan = seen.plan()
    assert plan is not None
    built, delivered = await _images_present(box, wanted, [s.name for s in plan.rebuilds])
    running = _running(seen.baseline, wanted)
    return dataclasses.replace(
        seen,
        built=built | running,
        delivered=delivered | running,
        in_registry=tuple(sorted(built)) if box.config.registry else (),
        # Found in the engine: this cycle reuses them instead of building them.
        reused=() if box.config.registry else tuple(sorted(built)),
    )


def observe_saved(sources: Sources, request: Request) -> Observation:
    """What the daemon would observe without reading the release or asking an engine:
    the saved state stands for both. Leaves a damaged state file where it is."""
    return _repository(sources, request, state.load(sources.state_dir))
