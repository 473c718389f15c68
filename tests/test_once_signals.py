"""``once`` and SIGTERM: the cycle is abandoned as the daemon's shutdown does it.

Issue 23: ``once`` had no handler, so SIGTERM killed it wherever it was (a helm write
half-way leaves the release ``pending-*``). The cycle here is a real coroutine that
waits (a stand-in for a rollout wait, no cluster); the release is the in-memory fake
of ``tests/fakes.py``, which records that it was asked to recover.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import threading
import time

import fakes
import pytest

from reconciler.cycle import outcomes, reconciling, state, toolboxes
from reconciler.daemon import running


def test_sigterm_abandons_the_cycle_and_recovers_the_release(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    journal = fakes.Journal()
    cluster = fakes.FakeKube(journal)
    releases = fakes.FakeReleases(journal, cluster, "lumina")
    box = toolboxes.Toolbox.__new__(toolboxes.Toolbox)
    box.deps = toolboxes.Dependencies(
        images=fakes.FakeImages(journal),
        kube=cluster,
        releaser=releases,
        store=state.Directory(tmp_path),
    )
    cancelled = threading.Event()

    async def waiting_cycle(_box: object, *, first: bool) -> outcomes.CycleResult:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        raise AssertionError("not cancelled")

    monkeypatch.setattr(reconciling, "run_cycle", waiting_cycle)
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    result = asyncio.run(running.once_unless_stopped(box))
    # What ended the wait: the signal (the cycle was cancelled), well before its 60 s.
    assert result is None
    assert cancelled.is_set()
    assert time.monotonic() - started < 10
    assert journal.calls == ["helm recover"]
