"""Nothing escapes a cycle: an error that is not the reconciler's own becomes a retry.

A real foreign error is provoked: the hash cache's temporary file is a directory, so
saving the cache (which every snapshot does) raises ``IsADirectoryError`` — an
``OSError``, not a :class:`reconciler.errors.LuminaError`. The cycle fails before it
would touch the cluster, so the toolbox has no cluster adapters (``None``); the test
checks the traceback names the real error, so a cycle that reached them (and failed
with ``AttributeError``) could not pass.
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
import time

import fakes
import pytest

from reconciler import discovery, errors, settings
from reconciler.cycle import (
    concluding,
    observing,
    outcomes,
    planning,
    reconciling,
    state,
    toolboxes,
)


def _box(project: pathlib.Path) -> toolboxes.Toolbox:
    # Files changed over 2 s ago are outside the stat cache's racy window (ctime too):
    # their hashes are cached, so the snapshot saves the cache.
    time.sleep(2.1)
    config = settings.load_settings(project)
    state_dir = config.repo_path(config.state_dir)
    (state_dir / "cache" / "hashes.tmp").mkdir(parents=True)
    return fakes.toolbox(config, discovery.discover_services(project).plugins).box


def test_a_foreign_error_is_a_retry_with_backoff_and_one_traceback(
    project: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    box = _box(project)
    caplog.set_level(logging.ERROR, logger="lumina.reconcile")
    first = asyncio.run(reconciling.run_cycle(box))
    second = asyncio.run(reconciling.run_cycle(box))
    for result in (first, second):
        assert result.outcome is outcomes.Outcome.RETRY, result
        assert "IsADirectoryError" in result.message, result.message
    assert first.retry_after == concluding.BACKOFF_SECONDS[0]
    assert second.retry_after == concluding.BACKOFF_SECONDS[1]
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1, [record.getMessage() for record in caplog.records]
    assert tracebacks[0].exc_info is not None
    assert isinstance(tracebacks[0].exc_info[1], IsADirectoryError)
    assert len(caplog.records) == 2  # the repeat is one line, without a traceback


def test_a_state_file_that_cannot_be_written_does_not_escape_the_cycle(
    project: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 23: an ``OSError`` while recording a failure escaped ``run_cycle``, and
    ``once`` ended in a traceback. The outcome stands; the lost record is said."""
    box = _box(project)
    (box.state_dir / "state.json").mkdir(parents=True)  # os.replace onto it fails
    seen = observing.Observation(
        request=observing.Request(),
        paused="",
        desired=None,
        saved=state.State(),
        state_problem="",
        release=None,
        release_read=False,
        baseline=planning.Baseline("nothing deployed", {}, {}, None),
    )
    refused = errors.PermanentError("the chart is refused", hint="fix it")
    caplog.set_level(logging.ERROR, logger="lumina.reconcile")
    result = concluding.failed(box, seen, refused, {}, ("blocked",))
    assert result.outcome is outcomes.Outcome.BLOCKED
    assert "the chart is refused" in result.message
    assert any("could not record the cycle" in r.getMessage() for r in caplog.records)
