"""The shapes the cycle needs of its side-effect adapters, as Protocols.

Who uses it: :class:`reconciler.cycle.toolboxes.Toolbox` types its adapters with these,
so the cycle depends on what it calls, not on the Helm, docker or kubernetes adapter
classes; :mod:`reconciler.cli.wiring` plugs the real ones in (mypy checks they fit) and
the unit tests plug in the in-memory fakes of ``tests/fakes.py``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.cluster import kube

if TYPE_CHECKING:
    from reconciler import services
    from reconciler.building import builds
    from reconciler.cycle import outcomes, state
    from reconciler.inputs import contexts, trees
    from reconciler.releasing import drifting, helm

#: The cluster connection. Its Protocol lives beside the real adapter
#: (:class:`reconciler.cluster.kube.Connection`): the cluster helpers the actions call
#: take it too, and they may not import the cycle.
Kube = kube.Connection


class Releases(Protocol):
    """One Helm release: read it, render and apply a new revision, roll it back."""

    async def current(self) -> helm.ReleaseState | None:
        """The latest revision, or None before the first install."""
        ...

    async def recover(self) -> str | None:
        """Clear a ``pending-*`` revision; says what was done, if anything."""
        ...

    async def render(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        """The objects an upgrade with ``values`` would apply."""
        ...

    async def deployed_manifests(self) -> list[dict[str, Any]]:
        """The objects of the current revision."""
        ...

    async def apply(self, values: dict[str, Any], description: str) -> int:
        """Apply a new revision without waiting for its pods; returns its number."""
        ...

    async def rollback(self, to_revision: int | None = None) -> int:
        """Return to ``to_revision`` without waiting for its pods; returns the new one."""
        ...


class StateStore(Protocol):
    """Where the cycle keeps what it saw deployed (``state.json``) and the file listings
    behind each digest. Blocking: called in threads of their own."""

    @property
    def path(self) -> pathlib.Path:
        """Where it is, for messages (and the ``plan`` command's own reads)."""
        ...

    def load(self, *, set_aside: bool = False) -> state.Loaded:
        """The saved state; a damaged one is empty with the problem said (and, with
        ``set_aside``, moved out of the way)."""
        ...

    def save(self, state: state.State) -> None:
        """Replace the saved state, atomically."""
        ...

    def save_manifest(self, digest: str, files: Mapping[str, trees.FileEntry]) -> None:
        """Keep the listing behind ``digest``."""
        ...


class Images(Protocol):
    """Where the cycle's images are found, built, pushed and delivered.

    Without a registry an image is found and built in the local engine and delivered
    into the nodes; with one, the registry is where it is found, and a build is pushed.
    The blocking methods are called in threads of their own.
    """

    def data_root(self) -> pathlib.Path | None:
        """Where the engine keeps images on this machine (its disk room is checked)."""
        ...

    def exists(self, reference: str) -> bool:
        """Whether ``reference`` is in the registry (with one) or the local engine."""
        ...

    async def build(
        self,
        plugin: services.ServicePlugin,
        inputs: contexts.ServiceInputs,
        source: contexts.Source,
        *,
        image: str,
        log: builds.LogLine,
    ) -> builds.BuiltImage:
        """``plugin``'s image as ``image:<digest tag>``, reused when already present."""
        ...

    def push(self, service: str, reference: str, log: builds.LogLine) -> str:
        """Push a built ``reference`` to the registry; returns the digest it stored."""
        ...

    def deliver(self, references: list[str]) -> None:
        """Copy the images into the cluster's nodes (no registry: they cannot pull)."""
        ...


class Clock(Protocol):
    """The time the cycle reads: the phases it reports and when each cycle finished
    (``state.json``'s history). The :mod:`time` module is the real one."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class Notifier(Protocol):
    """Who hears of the daemon's cycles and drift (the webhooks), without waiting."""

    def cycle_ended(self, result: outcomes.CycleResult) -> bool:
        """Tell of ``result`` if it is worth it; True when something was queued."""
        ...

    def drift_found(self, found: Sequence[drifting.Drift], revision: int | None) -> bool:
        """Tell of drift not told before; True when something was queued."""
        ...

    def stop(self) -> None:
        """Stop telling; what is still being retried is given up."""
        ...
