"""A stop that lands during the rollback of a failed rollout records the failure.

Before this, a SIGTERM during ``helm rollback`` cancelled the cycle with nothing
written: the next start found the old revision serving, the repository still asking for
the failed inputs, and tried them again (issue 23, item 6). Real settings, plugins and
state directory; Helm is the in-memory fake of ``tests/fakes.py`` whose rollback, like
the real adapter's, runs to its end even when its caller is cancelled.
"""

from __future__ import annotations

import asyncio
import pathlib
import types

import fakes
import pytest

from reconciler import discovery, settings
from reconciler.cluster import rollout
from reconciler.cycle import deciding, observing, planning, state, toolboxes
from reconciler.cycle.actions import remediate
from reconciler.releasing import helm

TAGS = {"frontend": "f" * 12, "backend": "b" * 12, "chatbot": "c" * 12}


class HelmStillRollingBack(fakes.FakeReleases):
    """A rollback that takes a moment, uninterrupted as the real adapter's is."""

    def __init__(self, journal: fakes.Journal, cluster: fakes.FakeKube, namespace: str) -> None:
        super().__init__(journal, cluster, namespace)
        self.rolling_back = asyncio.Event()
        self.finished: list[int] = []

    async def current(self) -> helm.ReleaseState | None:
        return helm.ReleaseState(self.revision, "deployed", {}) if self.finished else None

    async def rollback(self, to_revision: int | None = None) -> int:
        self.journal.calls.append(f"helm rollback {to_revision}")
        self.rolling_back.set()

        async def helm_at_work() -> int:
            await asyncio.sleep(0.3)
            self.revision += 1
            self.finished.append(self.revision)
            return self.revision

        return await helm._unbroken(helm_at_work())


def _failed_rollout(box: toolboxes.Toolbox) -> observing.Observation:
    images = {name: f"lumina/{name}:{tag}" for name, tag in TAGS.items()}
    attempt = observing.Rollout(
        revision=5, previous_revision=4, expected={"backend": images["backend"]}, applied_now=True
    )
    failed = rollout.RolloutResult(rollout.Verdict.FAILED, 2.0, detail="backend crashed")
    return observing.Observation(
        request=observing.Request(first=False),
        paused="",
        desired=observing.Desired(
            snapshot=types.SimpleNamespace(label="commit 0123abc"),  # type: ignore[arg-type]
            tags=TAGS,
            images=images,
            release_inputs="inputs",
            key="the-failed-inputs",
        ),
        saved=state.State(revision=4),
        state_problem="",
        release=None,
        release_read=True,
        baseline=planning.Baseline("revision 4", {}, {}, None),
        built=frozenset(TAGS),
        delivered=frozenset(TAGS),
        failure=observing.Failure(attempt, failed),
    )


def test_a_stop_during_the_rollback_records_the_failure_once_helm_finished(
    project: pathlib.Path,
) -> None:
    config = settings.load_settings(project)
    fake = fakes.toolbox(
        config, discovery.discover_services(project).plugins, releases=HelmStillRollingBack
    )
    box = fake.box
    releases = fake.releases
    assert isinstance(releases, HelmStillRollingBack)
    releases.revision = 5
    decision = deciding.Decision(deciding.CycleState.ROLLOUT_FAILED, "failed", ("backend",))

    async def stop_mid_rollback() -> None:
        task = asyncio.create_task(remediate.run(box, _failed_rollout(box), decision))
        await asyncio.wait_for(releases.rolling_back.wait(), 5)
        task.cancel()  # what the daemon's SIGTERM handler does to the cycle
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(stop_mid_rollback())

    assert releases.finished == [6], "the cancelled caller did not let helm finish"
    kept = state.load(box.state_dir).state
    assert kept.last_failure is not None, "the failure was not recorded"
    assert kept.last_failure["target"] == "the-failed-inputs"
    assert kept.last_failure["outcome"] == "rolled-back"
    said = kept.last_failure["message"]
    assert "rolled back to revision 4 (now revision 6), then stopped" in said, said
    assert kept.history[-1]["outcome"] == "rolled-back"
    assert kept.revision == 6, "the state does not name the revision Helm has after the rollback"
