"""Helm releases through pyhelm3: read, render, upgrade, roll back, recover.

Who calls it: the cycle (observe reads, the upgrade, unlock and remediate actions
write) and the ``drift`` command.
Only this module imports pyhelm3, so its quirks are handled in one place. Helm errors
are translated at this boundary: a chart or values problem is permanent (the user must
fix it), an unreachable cluster is temporary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import pathlib
import time
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

import pyhelm3
import pyhelm3.errors
from pyhelm3.models import ReleaseRevisionStatus

from reconciler import errors

PENDING = frozenset(
    {
        ReleaseRevisionStatus.PENDING_INSTALL,
        ReleaseRevisionStatus.PENDING_UPGRADE,
        ReleaseRevisionStatus.PENDING_ROLLBACK,
    }
)
#: the same, as the words a release's status is read as
PENDING_NAMES = frozenset(str(status.value) for status in PENDING)

log = logging.getLogger("lumina.releasing")

#: Helm subcommands that leave a release ``pending-*`` while they run.
_WRITING = frozenset({"upgrade", "install", "rollback", "uninstall"})


def helm_writers(release: str, namespace: str) -> list[int]:
    """PIDs of helm processes on this machine still changing ``release``.

    A daemon killed with SIGKILL leaves its helm child running; until that child ends,
    the release's ``pending-*`` status is honest work in progress, not a crash to undo.
    """
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or not ours to read
        words = [word.decode("utf-8", "replace") for word in argv if word]
        if not words or os.path.basename(words[0]) != "helm":
            continue
        if _WRITING.isdisjoint(words) or release not in words:
            continue
        if namespace in words or f"--namespace={namespace}" in words:
            found.append(int(entry.name))
    return found


async def _unbroken(work: Coroutine[Any, Any, int]) -> int:
    """Run ``work`` to its end even if the caller is cancelled, then re-raise the
    cancellation: a helm write stopped half-way leaves the release ``pending-*``."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        raise


class ChartError(errors.PermanentError):
    """The chart or its values were rejected (lint, schema, template error)."""

    outcome = "chart-rejected"
    of_inputs = True


class ReleaseError(errors.PermanentError):
    """Helm failed to apply or roll back the release."""


class ClusterUnreachableError(errors.TemporaryError):
    """Helm could not reach the Kubernetes API."""


@dataclasses.dataclass(frozen=True)
class ReleaseState:
    revision: int
    status: str
    values: dict[str, Any]


def _translate(exc: pyhelm3.errors.Error, doing: str) -> errors.LuminaError:
    detail = str(exc).strip().splitlines()
    text = " ".join(line.strip() for line in detail[-6:]) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, pyhelm3.errors.ConnectionError) or any(
        marker in lowered
        for marker in ("connection refused", "kubernetes cluster unreachable", "i/o timeout")
    ):
        return ClusterUnreachableError(
            f"{doing}: the cluster is unreachable: {text}", retry_after=10
        )
    if isinstance(exc, pyhelm3.errors.FailedToRenderChartError) or "values don't meet" in lowered:
        return ChartError(
            f"{doing}: the chart was rejected: {text}", hint="fix the chart or its values"
        )
    return ReleaseError(f"{doing}: {text}")


class Releaser:
    """One release of one chart in one namespace."""

    def __init__(
        self,
        *,
        helm: str,
        kubeconfig: pathlib.Path | None,
        kube_context: str | None,
        namespace: str,
        release: str,
        chart: pathlib.Path,
        timeout_seconds: float,
        read_timeout_seconds: float = 60.0,
    ) -> None:
        try:
            self._client = pyhelm3.Client(
                executable=helm,
                kubeconfig=kubeconfig,
                kubecontext=kube_context,
                default_timeout=f"{int(timeout_seconds)}s",
            )
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            raise errors.PermanentError(
                f"helm is not usable ({helm}): {exc}", hint="run tools/install-helm.sh"
            ) from exc
        self.namespace = namespace
        self.release = release
        self.chart = chart
        self.timeout = f"{int(timeout_seconds)}s"
        self.timeout_seconds = timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds

    async def _read[T](self, reading: Awaitable[T], doing: str) -> T:
        """A helm read, bounded: helm itself sets no timeout on its API requests, so a
        hung API server would hang the cycle with no word. A cancelled read terminates
        its helm (pyhelm3 does), and nothing was being written."""
        try:
            return await asyncio.wait_for(reading, self.read_timeout_seconds)
        except TimeoutError:
            raise ClusterUnreachableError(
                f"{doing}: helm got no answer from the Kubernetes API server in "
                f"{self.read_timeout_seconds:.0f}s (is it hung, or a proxy in front of it?)",
                retry_after=10,
            ) from None

    async def _revision(self) -> Any:
        try:
            return await self._read(
                self._client.get_current_revision(self.release, namespace=self.namespace),
                f"reading release {self.release}",
            )
        except pyhelm3.errors.ReleaseNotFoundError:
            return None
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"reading release {self.release}") from exc

    async def current(self) -> ReleaseState | None:
        """The release's latest revision, or None before the first install."""
        revision = await self._revision()
        if revision is None:
            return None
        try:
            values = await self._read(revision.values(), "reading release values")
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, "reading release values") from exc
        return ReleaseState(revision.revision, str(revision.status.value), dict(values or {}))

    async def _outlast_orphans(self, patience_seconds: float) -> str | None:
        """Wait, bounded, for a helm left behind by a killed run to finish its work."""
        writers = await asyncio.to_thread(helm_writers, self.release, self.namespace)
        if not writers:
            return None
        log.warning(
            "helm (PID %s) of an earlier run is still changing release %s; waiting for it",
            ", ".join(map(str, writers)),
            self.release,
        )
        deadline = time.monotonic() + patience_seconds
        while writers and time.monotonic() < deadline:
            await asyncio.sleep(1)
            writers = await asyncio.to_thread(helm_writers, self.release, self.namespace)
        if writers:
            raise ReleaseError(
                f"helm (PID {', '.join(map(str, writers))}) has been changing release "
                f"{self.release} for over {patience_seconds:.0f}s",
                hint="wait for it or stop it; the next cycle recovers the release",
            )
        return "an earlier run's helm finished its work"

    async def recover(self) -> str | None:
        """Clear a release left ``pending-*`` by a crash; says what was done, if anything.

        A pending revision that a surviving helm process is still working on (its parent
        was killed) is waited for, not rolled back under it.
        """
        revision = await self._revision()
        if revision is None or revision.status not in PENDING:
            return None
        # Helm's --atomic may roll back after its --timeout: allow for both.
        waited = await self._outlast_orphans(2 * self.timeout_seconds + 60)
        if waited:
            revision = await self._revision()
            if revision is None:
                return f"{waited}; the release is gone"
            if revision.status not in PENDING:
                return f"{waited}: revision {revision.revision} is {revision.status.value}"
        stuck = f"revision {revision.revision} was stuck in {revision.status.value}"
        try:
            if revision.status is ReleaseRevisionStatus.PENDING_INSTALL:
                await revision.release.uninstall(wait=True, timeout=self.timeout)
                return f"{stuck}; uninstalled it (the PVC is kept) so the install can run again"
            # No --wait: the cycle verifies the rollout itself, and no helm outlives it.
            recovered = await revision.release.rollback(
                cleanup_on_fail=True, wait=False, timeout=self.timeout
            )
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"recovering stuck release {self.release}") from exc
        return f"{stuck}; rolled back to the last deployed state as revision {recovered.revision}"

    async def render(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        """The objects an upgrade with ``values`` would apply (values schema checked)."""
        try:
            chart = await self._client.get_chart(self.chart)
            rendered: Iterable[dict[str, Any]] = await self._client.template_resources(
                chart, self.release, values, namespace=self.namespace, is_upgrade=True
            )
        except pyhelm3.errors.Error as exc:
            problem = _translate(exc, "rendering the chart")
            if isinstance(problem, ReleaseError):
                # Nothing was applied yet: whatever failed is the chart's or its values'.
                problem = ChartError(problem.message, hint="fix the chart or its values")
            raise problem from exc
        return [obj for obj in rendered if obj]

    async def deployed_manifests(self) -> list[dict[str, Any]]:
        """Objects of the release's current revision (empty before the first install)."""
        revision = await self._revision()
        if revision is None:
            return []
        try:
            found = await self._read(revision.resources(), "reading the release manifest")
            return [obj for obj in found if obj]
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, "reading the release manifest") from exc

    async def apply(self, values: dict[str, Any], description: str) -> int:
        """``helm upgrade --install`` without ``--wait`` or ``--atomic``: Helm applies the
        objects and returns; the cycle owns the wait and the rollback. Returns the new
        revision.

        Never interrupted half-way: a cancelled caller waits for this helm to finish (a
        few seconds) rather than leave the release ``pending-upgrade``.
        """

        async def run() -> int:
            chart = await self._client.get_chart(self.chart)
            revision = await self._client.install_or_upgrade_release(
                self.release,
                chart,
                values,
                atomic=False,
                wait=False,
                timeout=self.timeout,
                namespace=self.namespace,
                create_namespace=False,
                description=description[:200],
            )
            return int(revision.revision)

        try:
            return await _unbroken(run())
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"helm upgrade of {self.release}") from exc

    async def rollback(self, to_revision: int | None = None) -> int:
        """Roll back to ``to_revision`` (default: the previous one) without waiting for
        the pods, uninterrupted like :meth:`apply`; returns the new revision."""
        revision = await self._revision()
        if revision is None:
            raise ReleaseError(f"release {self.release} does not exist; nothing to roll back")

        async def run() -> int:
            recovered = await revision.release.rollback(
                to_revision, cleanup_on_fail=True, wait=False, timeout=self.timeout
            )
            return int(recovered.revision)

        try:
            return await _unbroken(run())
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, f"rolling back {self.release}") from exc

    async def history(self) -> list[tuple[int, str, str]]:
        """(revision, status, description) of recent revisions, oldest first."""
        revision = await self._revision()
        if revision is None:
            return []
        try:
            found = await self._read(revision.release.history(), "reading release history")
        except pyhelm3.errors.Error as exc:
            raise _translate(exc, "reading release history") from exc
        return [
            (int(item.revision), str(item.status.value), str(item.description or ""))
            for item in found
        ]
