"""The shapes the cycle needs of its side-effect adapters, as Protocols.

Who uses it: :class:`reconciler.cycle.toolboxes.Toolbox` types its adapters with these,
so the cycle depends on what it calls, not on the Helm adapter class or a provider's;
:mod:`reconciler.cli.wiring` plugs the real ones in (mypy checks they fit).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from reconciler.releasing import helm


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


class ImageLoading(Protocol):
    """A cluster provider's way of getting built images into its nodes."""

    def load_images(self, images: list[str]) -> None: ...

    def docker_env(self) -> dict[str, str]: ...
