"""The whole cycle (:func:`reconciler.cycle.reconciling.run_cycle`) on the fakes of
``tests/fakes.py``: real settings, plugins, git repository and state directory; no
cluster, no Helm, no Docker. Each test reads what a user would see: what reached the
cluster and in which order, what ``state.json`` says, and the cycle's outcome.
"""

from __future__ import annotations

import asyncio
import pathlib
import threading

import fakes
import pytest

from reconciler import discovery, settings
from reconciler.cycle import observing, outcomes, reconciling, state
from reconciler.daemon import running
from reconciler.releasing import helm


def _fakes(project: pathlib.Path, **overrides: object) -> fakes.Fakes:
    config = settings.load_settings(project, overrides=dict(overrides))
    return fakes.toolbox(config, discovery.discover_services(project).plugins)


def _cycle(fake: fakes.Fakes, **request: bool) -> outcomes.CycleResult:
    return asyncio.run(reconciling.run_cycle(fake.box, **request))


def _saved(fake: fakes.Fakes) -> state.State:
    return state.load(fake.box.state_dir).state


def _images(fake: fakes.Fakes) -> dict[str, str]:
    return {name: f"{image.image}:{image.tag}" for name, image in _saved(fake).services.items()}


def test_a_first_install_builds_delivers_applies_the_namespace_first_and_records_it(
    project: pathlib.Path,
) -> None:
    fake = _fakes(project)

    result = _cycle(fake, first=True)

    assert result.outcome is outcomes.Outcome.CONVERGED, result.message
    assert result.revision == 1
    assert sorted(result.built) == ["backend", "chatbot", "frontend"]
    writes = fake.journal.writes()
    assert writes[0] == "apply Namespace /lumina", writes
    assert writes[-1] == "helm upgrade --install lumina", writes
    assert {"apply Secret lumina/backend-secrets", "apply Secret lumina/lumina-reconciler"} <= set(
        writes
    )
    calls = fake.journal.calls
    # Every image is built, then loaded into the nodes, before Helm names it.
    loaded = next(i for i, call in enumerate(calls) if call.startswith("load "))
    assert max(i for i, c in enumerate(calls) if c.startswith("docker build")) < loaded
    assert loaded < calls.index("helm upgrade --install lumina")
    saved = _saved(fake)
    assert saved.revision == 1
    assert sorted(_images(fake)) == ["backend", "chatbot", "frontend"]
    assert set(_images(fake).values()) == set(fake.images.delivered)
    assert saved.history[-1]["outcome"] == "converged"
    assert saved.history[-1]["finished_at"] == fake.clock.now
    # The cluster runs what state.json says.
    for name, image in _images(fake).items():
        live = fake.kube.get("apps/v1", "Deployment", "lumina", name)
        assert live is not None
        assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image


def test_a_second_cycle_with_nothing_changed_touches_nothing(project: pathlib.Path) -> None:
    fake = _fakes(project)
    _cycle(fake, first=True)
    fake.journal.calls.clear()

    result = _cycle(fake)

    assert result.outcome is outcomes.Outcome.NOTHING_TO_DO, result.message
    assert fake.journal.writes() == []
    assert not [call for call in fake.journal.calls if call.startswith("docker build")]


def _wanted(fake: fakes.Fakes) -> dict[str, str]:
    """The images the repository asks for now (what the next cycle will deploy)."""
    return dict(observing.desired(observing.Sources.of(fake.box)).images)


def _edit_backend(project: pathlib.Path) -> None:
    (project / "services/backend/app/main.py").write_text("app = 'backend, edited'\n")


def test_an_edit_upgrades_only_its_service_and_records_the_new_revision(
    project: pathlib.Path,
) -> None:
    fake = _fakes(project)
    _cycle(fake, first=True)
    before = _images(fake)
    fake.journal.calls.clear()
    _edit_backend(project)

    result = _cycle(fake)

    assert result.outcome is outcomes.Outcome.CONVERGED, result.message
    assert result.built == ("backend",)
    assert fake.journal.helm() == ["helm template", "helm upgrade --install lumina"]
    after = _images(fake)
    assert after["backend"] != before["backend"]
    assert {k: v for k, v in after.items() if k != "backend"} == {
        k: v for k, v in before.items() if k != "backend"
    }
    assert _saved(fake).revision == 2
    # Unchanged services keep their tags in the one upgrade.
    frontend = fake.releases.values[-1]["frontend"]["image"]
    assert f"{frontend['repository']}:{frontend['tag']}" == before["frontend"]


def test_a_new_image_that_crashes_is_rolled_back_and_not_tried_again(
    project: pathlib.Path,
) -> None:
    fake = _fakes(project)
    _cycle(fake, first=True)
    before = _images(fake)
    _edit_backend(project)
    fake.releases.failing[_wanted(fake)["backend"]] = "crash"

    result = _cycle(fake)

    assert result.outcome is outcomes.Outcome.ROLLED_BACK, result.message
    assert "keeps crashing" in result.message
    assert "rolled back to revision 1 (now revision 3)" in result.message
    assert fake.journal.helm()[-1] == "helm rollback 1"
    live = fake.kube.get("apps/v1", "Deployment", "lumina", "backend")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == before["backend"]
    saved = _saved(fake)
    assert saved.last_failure is not None and saved.last_failure["outcome"] == "rolled-back"
    assert saved.history[-1]["outcome"] == "rolled-back"

    fake.journal.calls.clear()
    again = _cycle(fake)

    assert again.outcome is outcomes.Outcome.SKIPPED_KNOWN_FAILURE, again.message
    assert fake.journal.writes() == []


def test_drift_is_corrected_by_a_forced_upgrade(project: pathlib.Path) -> None:
    fake = _fakes(project)
    _cycle(fake, first=True)
    recorded = _images(fake)
    # `kubectl set image` by hand: the release's Deployment runs another image.
    fake.kube.put(fakes.deployment("backend", "lumina", "someone/else:1", ready=True))
    found = asyncio.run(reconciling.detect_drift(fake.box))
    assert [(d.service, d.field, d.live) for d in found] == [
        ("backend", "container backend image", "someone/else:1")
    ], found
    fake.journal.calls.clear()

    result = _cycle(fake, force_upgrade=True)

    assert result.outcome is outcomes.Outcome.CONVERGED, result.message
    assert fake.journal.helm()[-1] == "helm upgrade --install lumina"
    assert not [call for call in fake.journal.calls if call.startswith("docker build")]
    live = fake.kube.get("apps/v1", "Deployment", "lumina", "backend")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == recorded["backend"]
    assert _saved(fake).revision == 2
    assert asyncio.run(reconciling.detect_drift(fake.box)) == []


def test_a_release_left_pending_is_unlocked_before_anything_else(project: pathlib.Path) -> None:
    fake = _fakes(project)
    _cycle(fake, first=True)
    # A daemon killed mid-upgrade (its helm gone too) left revision 2 pending.
    fake.releases.revision = 2
    fake.releases.history.append(
        helm.ReleaseState(2, "pending-upgrade", fake.releases.history[-1].values)
    )
    fake.journal.calls.clear()

    result = _cycle(fake, first=True)

    # The rollback to revision 1 runs what the repository says: nothing to deploy.
    assert result.outcome is outcomes.Outcome.NOTHING_TO_DO, result.message
    assert "recovered: rolled back pending-upgrade revision 2" in result.message
    assert result.states[0] == "locked"
    assert fake.journal.helm()[0] == "helm recover"
    assert "helm upgrade --install lumina" not in fake.journal.calls
    assert fake.releases.history[-1].status == "deployed"
    assert _saved(fake).revision == fake.releases.history[-1].revision == 3


def test_a_stop_during_the_rollout_wait_joins_the_watches_and_records_nothing_converged(
    project: pathlib.Path,
) -> None:
    """SIGTERM cancels the cycle task (the daemon's handler); the wait must end its
    watch threads, and state.json must not claim what was never seen ready."""
    fake = _fakes(project)
    for image in _wanted(fake).values():
        fake.releases.failing[image] = "hang"

    async def stop_mid_wait() -> None:
        task = asyncio.create_task(reconciling.run_cycle(fake.box, first=True))
        for _ in range(200):
            if fake.kube.watching == 2:
                break
            await asyncio.sleep(0.05)
        assert fake.kube.watching == 2, "the rollout wait did not start its two watches"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake.kube.watching == 0, "a watch thread outlived the cancelled cycle"

    asyncio.run(stop_mid_wait())

    assert not [t for t in threading.enumerate() if t.name.startswith("rollout-watch-")]
    assert "helm upgrade --install lumina" in fake.journal.calls
    saved = _saved(fake)
    assert saved.revision is None
    assert saved.services == {}
    assert not [entry for entry in saved.history if entry["outcome"] == "converged"]


def test_the_daemon_tells_its_notifier_how_each_cycle_ended(project: pathlib.Path) -> None:
    fake = _fakes(project)
    told = fakes.FakeNotifier()
    daemon = running.Daemon(fake.box, notifier=told)

    installed = asyncio.run(daemon._cycle(first=True))
    _edit_backend(project)
    listings = fake.box.runtime.listings
    assert listings is not None, "the work-tree daemon keeps no listings"
    listings.touched(["services/backend/app/main.py"])  # what its watcher reports
    fake.releases.failing[_wanted(fake)["backend"]] = "crash"
    failed = asyncio.run(daemon._cycle(first=False))

    assert [r.outcome for r in told.results] == [
        outcomes.Outcome.CONVERGED,
        outcomes.Outcome.ROLLED_BACK,
    ]
    assert told.results == [installed, failed]
