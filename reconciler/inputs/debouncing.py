"""Debouncing: many change events from any thread in, one batch per quiet moment out.

Who calls it: the watchers of :mod:`reconciler.inputs.watching` push events from watchdog's
threads; the reconcile loop awaits :meth:`Debouncer.next_batch` and runs one cycle per
batch. A ``git checkout`` touching thousands of files, or an editor's write-then-rename
save, thus becomes one plan of the final state rather than one plan per event.

A batch is closed when no event arrived for ``quiet`` seconds, or at the latest
``max_delay`` seconds after its first event, so a never-ending trickle of writes (a log
file inside a build context, say) still deploys now and then. Events that arrive while
the consumer is busy with a cycle are kept and form the next batch: nothing is lost, and
a batch whose window already passed is handed out at once.

Pure asyncio; it knows nothing about files. One consumer per debouncer.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Iterable

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Batch:
    """Everything that happened between two cycles."""

    #: Repository-relative paths that changed; a directory path stands for all below it.
    paths: frozenset[str]
    #: Events may have been lost (inotify overflow, a watch error): re-read everything.
    rescan: bool
    #: Event-loop clock (``loop.time()``) of the first and the last event of the batch.
    first_at: float
    last_at: float
    #: How many pushes the batch collects.
    count: int
    #: The newest commit id of the tracked branch pushed in this batch (commit mode).
    commit: str | None = None


class Debouncer:
    """Collects events from any thread and hands them to one asyncio consumer in batches.

    Create it inside the running event loop (or pass ``loop``); it schedules its work on
    that loop, whichever thread pushes.
    """

    def __init__(
        self,
        *,
        quiet: float,
        max_delay: float,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if quiet <= 0 or max_delay < quiet:
            raise ValueError(
                f"need 0 < quiet <= max_delay, got quiet={quiet}, max_delay={max_delay}"
            )
        self.quiet = quiet
        self.max_delay = max_delay
        self._loop = loop or asyncio.get_running_loop()
        self._arrived = asyncio.Event()
        self._paths: set[str] = set()
        self._rescan = False
        self._commit: str | None = None
        self._first_at = 0.0
        self._last_at = 0.0
        self._count = 0

    def push(
        self, paths: Iterable[str] = (), *, rescan: bool = False, commit: str | None = None
    ) -> None:
        """Record one event: changed ``paths``, a ``rescan`` request, or a new ``commit``.

        Safe from any thread. After the event loop has closed (daemon shutdown) the event
        is dropped: there is no cycle left to run it.
        """
        at = self._loop.time()
        frozen = frozenset(paths)
        try:
            self._loop.call_soon_threadsafe(self._accept, frozen, rescan, commit, at)
        except RuntimeError:
            logger.debug("event loop closed; dropping a change event")

    @property
    def pending(self) -> int:
        """Events collected for the next batch (call from the event loop's thread)."""
        return self._count

    def _accept(self, paths: frozenset[str], rescan: bool, commit: str | None, at: float) -> None:
        if self._count == 0:
            self._first_at = self._last_at = at
        self._last_at = max(self._last_at, at)
        self._count += 1
        self._paths |= paths
        self._rescan = self._rescan or rescan
        if commit is not None:
            self._commit = commit
        self._arrived.set()

    async def next_batch(self) -> Batch:
        """Wait for the next batch and take it.

        Returns once the batch has been quiet for ``quiet`` seconds, or ``max_delay``
        seconds after its first event. Cancelling the wait keeps the collected events.
        """
        while True:
            if self._count == 0:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            deadline = min(self._last_at + self.quiet, self._first_at + self.max_delay)
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                return self._take()
            self._arrived.clear()
            # Woken early by a new event only to move the quiet deadline.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    def _take(self) -> Batch:
        batch = Batch(
            paths=frozenset(self._paths),
            rescan=self._rescan,
            first_at=self._first_at,
            last_at=self._last_at,
            count=self._count,
            commit=self._commit,
        )
        self._paths = set()
        self._rescan = False
        self._commit = None
        self._count = 0
        return batch
