"""The long-running daemon: triggers in, one cycle at a time, status out.

Who calls it: ``lumina-reconcile run``. Long-lived pieces — the watcher's thread, the
status server, the cycle task — are started by name and stopped in reverse order. On
SIGTERM or SIGINT a running cycle is cancelled: a build is abandoned before anything
reaches Helm; a helm write (an upgrade, a rollback) runs to its end, never left
``pending-*``, and a pending release an earlier crash left is cleared. A revision
applied but not yet seen ready stays deployed: the next start verifies it and rolls it
back if its pods fail. A stop while a failed rollout is remedied finishes the data
revert and the rollback first, and records the failure, so the next start does not try
those inputs again. Then the process exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any

from reconciler import settings
from reconciler.cycle import outcomes, ports, reconciling, toolboxes
from reconciler.daemon import notifying, reporting, serving
from reconciler.inputs import debouncing, watching, worktree_reading
from reconciler.releasing import drifting

log = logging.getLogger("lumina.daemon")


class Daemon:
    def __init__(self, box: toolboxes.Toolbox, *, notifier: ports.Notifier | None = None) -> None:
        self.box = box
        self.notifier: ports.Notifier = notifier or notifying.Notifier(
            [str(url) for url in box.config.notify_webhooks],
            release=box.config.release,
            namespace=box.config.namespace,
        )
        self.last: outcomes.CycleResult | None = None
        self.started_at = box.deps.clock.time()
        self.cycles = 0
        self.drift: list[drifting.Drift] = []
        #: the page's timeline: longer than the state file's history, in memory only
        self.timeline = reporting.Timeline(box.deps.store.load().state.history)
        self.rollouts = reporting.LiveRollouts(
            lambda name: box.deps.kube.get("apps/v1", "Deployment", box.config.namespace, name),
            {plugin.name: plugin.values_key for plugin in box.plugins},
        )
        self._busy = False
        self._correct_drift = False
        if box.config.mode is settings.TriggerMode.WORKTREE and box.runtime.listings is None:
            # The watcher reports every changed path, so cycles patch the last listing
            # instead of walking the whole tree again.
            box.runtime.listings = worktree_reading.ListingMemo()

    def _watcher(
        self, debouncer: debouncing.Debouncer
    ) -> watching.WorktreeWatcher | watching.CommitWatcher:
        config = self.box.config
        if config.mode is settings.TriggerMode.COMMIT:
            return watching.CommitWatcher(
                config.repo,
                config.branch,
                debouncer,
                poll_seconds=config.poll_seconds,
                files=[config.repo_path(config.secrets_file)],
            )
        state_dir = config.state_dir.strip("/")
        return watching.WorktreeWatcher(
            config.repo, debouncer, ignore=lambda path: path.startswith(state_dir + "/")
        )

    async def _watch_drift(self, debouncer: debouncing.Debouncer) -> None:
        """Every ``drift_interval_seconds``, compare the live objects with the release."""
        config = self.box.config
        while True:
            await asyncio.sleep(config.drift_interval_seconds)
            if self._busy:
                continue  # never interleave helm calls with a running cycle
            try:
                self.drift = await reconciling.detect_drift(self.box)
            except Exception as exc:  # an API blink must not end drift watching
                log.warning("drift check failed: %s", exc)
                continue
            self.notifier.drift_found(self.drift, self.last.revision if self.last else None)
            if not self.drift:
                continue
            for item in self.drift:
                log.warning("drift: %s", item.describe())
            if config.drift is settings.DriftMode.CORRECT:
                self._correct_drift = True
                debouncer.push(rescan=True)

    def _remember(self, batch: debouncing.Batch) -> None:
        if batch.paths:
            log.info("changes: %d paths from %d events", len(batch.paths), batch.count)
        if self.box.runtime.listings is None:
            return
        if batch.rescan:
            self.box.runtime.listings.forget()
        else:
            self.box.runtime.listings.touched(batch.paths)

    async def _cycle(self, first: bool) -> outcomes.CycleResult:
        force, self._correct_drift = self._correct_drift, False
        self._busy = True
        try:
            result = await reconciling.run_cycle(self.box, first=first, force_upgrade=force)
        finally:
            self._busy = False
        if force and result.outcome.converged:
            log.info("drift corrected: %s", result.message)
            self.drift = []
        self.last = result
        self.cycles += 1
        self.timeline.add(result)
        self.notifier.cycle_ended(result)  # queued: delivery never delays the next cycle
        level = logging.INFO if result.outcome.converged else logging.WARNING
        log.log(level, "cycle %d: %s — %s", self.cycles, result.outcome.value, result.message)
        if result.diagnosis is not None:
            log.warning("%s", result.diagnosis.explain())
        return result

    def status(self) -> dict[str, Any]:
        """The document of ``/status`` (called from the status server's thread)."""
        live = reporting.Live(
            pid=os.getpid(),
            started_at=self.started_at,
            last=self.last,
            cycles=self.timeline.cycles(),
            drift=self.drift,
        )
        return reporting.status_document(self.box.config, live, rollouts=self.rollouts.states())

    async def _abandon(self, cycle: asyncio.Task[outcomes.CycleResult]) -> None:
        await abandon(self.box, cycle)

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = serving.StatusServer(
            self.box.config.status_port,
            self.status,
            self.box.metrics,
            cycles=self.timeline.cycles,
        )
        server.start()
        log.info(
            "status on http://127.0.0.1:%d/status, its page on http://127.0.0.1:%d/",
            server.port,
            server.port,
        )
        debouncer = debouncing.Debouncer(
            quiet=self.box.config.debounce_seconds, max_delay=self.box.config.debounce_max_seconds
        )
        watcher = self._watcher(debouncer)
        watcher.start()
        log.info("watching %s (%s mode)", self.box.config.repo, self.box.config.mode.value)
        debouncer.push(rescan=True)  # the first cycle looks at everything at once
        first = True
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        drift_watch = asyncio.create_task(self._watch_drift(debouncer), name="drift-watch")
        try:
            while not stop.is_set():
                waiting = asyncio.create_task(debouncer.next_batch(), name="next-batch")
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    waiting.cancel()
                    break
                self._remember(waiting.result())
                cycle = asyncio.create_task(self._cycle(first), name="cycle")
                await asyncio.wait({cycle, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not cycle.done():
                    await self._abandon(cycle)
                    break
                try:
                    result = cycle.result()
                except Exception:  # run_cycle concludes every error; this is a last guard
                    log.exception("the cycle failed outside its own error handling")
                    loop.call_later(30, lambda: debouncer.push(rescan=True))
                    continue
                if result.outcome is not outcomes.Outcome.RETRY:
                    first = False
                if result.retry_after is not None:
                    loop.call_later(result.retry_after, lambda: debouncer.push(rescan=True))
        finally:
            stopping.cancel()
            drift_watch.cancel()
            await asyncio.gather(drift_watch, return_exceptions=True)
            watcher.stop()
            server.stop()
            self.notifier.stop()
            log.info("stopped after %d cycles", self.cycles)
        return 0


async def abandon(box: toolboxes.Toolbox, cycle: asyncio.Task[outcomes.CycleResult]) -> None:
    """Cancel a running cycle cleanly: a helm write runs to its end (see the Helm
    adapter), then a ``pending-*`` release is cleared."""
    log.info("stopping: abandoning the running cycle cleanly")
    cycle.cancel()
    await asyncio.gather(cycle, return_exceptions=True)
    try:
        recovered = await box.deps.releaser.recover()
    except Exception as exc:  # shutting down: report, never raise
        log.error("could not check the release after stopping: %s", exc)
        return
    if recovered:
        log.warning("release recovered on shutdown: %s", recovered)


async def once_unless_stopped(box: toolboxes.Toolbox) -> outcomes.CycleResult | None:
    """One cycle (``lumina-reconcile once``); SIGTERM or SIGINT abandons it as the
    daemon's shutdown does, and the result is None."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    cycle = asyncio.create_task(reconciling.run_cycle(box, first=True), name="cycle")
    stopping = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        await asyncio.wait({cycle, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if cycle.done():
        return cycle.result()
    await abandon(box, cycle)
    return None


def run_daemon(box: toolboxes.Toolbox) -> int:
    """Serve until stopped; the caller holds the repository lock."""
    return asyncio.run(Daemon(box).serve())
