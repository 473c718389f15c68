"""Each action of the cycle (:mod:`reconciler.cycle.actions`) alone, on the fakes of
``tests/fakes.py``: real settings, plugins, git repository and state directory; no
cluster, no Helm, no Docker. The observation an action gets is the real ``observe()``'s
(or, for a failed rollout, the one the verify action leaves), and each test reads what
a user would see: what reached the cluster, in which order, and what the cycle says.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib

import fakes
import pytest

from reconciler import discovery, settings
from reconciler.cluster import kube, rollout, trial_pods
from reconciler.cycle import actions, deciding, observing, reconciling, state
from reconciler.cycle.actions import (
    build,
    deliver,
    record,
    remediate,
    unlock,
    upgrade,
    verify,
)
from reconciler.releasing import helm

NAMESPACE = "lumina"


def _fakes(project: pathlib.Path, objects: list[fakes.Object] | None = None) -> fakes.Fakes:
    config = settings.load_settings(project)
    return fakes.toolbox(config, discovery.discover_services(project).plugins, objects)


def _observe(fake: fakes.Fakes, *, first: bool = True) -> observing.Observation:
    return asyncio.run(observing.observe(fake.box, observing.Request(first=first)))


def _installed(project: pathlib.Path) -> fakes.Fakes:
    fake = _fakes(project)
    result = asyncio.run(reconciling.run_cycle(fake.box, first=True))
    assert result.revision == 1, result.message
    fake.journal.calls.clear()
    fake.images.delivered.clear()
    return fake


def _act_until(
    fake: fakes.Fakes, seen: observing.Observation, action: deciding.Action
) -> tuple[observing.Observation, deciding.Decision]:
    """Run the actions the decided states call for, up to (not including) ``action``."""

    async def act(
        seen: observing.Observation, decision: deciding.Decision
    ) -> observing.Observation:
        return await actions.BY_ACTION[decision.action](fake.box, seen, decision)

    while (decision := deciding.decide(seen)).action is not action:
        seen = asyncio.run(act(seen, decision))
    return seen, decision


def _image(deployment: fakes.Object | None) -> str:
    assert deployment is not None
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def test_build_builds_what_is_missing_and_reuses_what_the_engine_has(
    project: pathlib.Path,
) -> None:
    fake = _fakes(project)
    seen = _observe(fake)
    assert seen.desired is not None
    fake.images.present.add(seen.desired.images["chatbot"])
    seen = _observe(fake)
    assert seen.desired is not None
    decision = deciding.decide(seen)
    assert decision.state is deciding.CycleState.IMAGES_MISSING

    after = asyncio.run(build.run(fake.box, seen, decision))

    built = [call for call in fake.journal.calls if call.startswith("docker build")]
    assert sorted(built) == sorted(
        f"docker build {seen.desired.images[name]}" for name in ("backend", "frontend")
    )
    assert sorted(after.built_now) == ["backend", "frontend"]
    assert after.reused == ("chatbot",)
    assert fake.journal.writes() == [], "a build writes nothing to the cluster"
    assert deciding.decide(after).state is deciding.CycleState.UNDELIVERED


def test_deliver_loads_the_built_images_into_the_nodes(project: pathlib.Path) -> None:
    fake = _fakes(project)
    seen = _observe(fake)
    seen = asyncio.run(build.run(fake.box, seen, deciding.decide(seen)))
    decision = deciding.decide(seen)
    assert seen.desired is not None

    after = asyncio.run(deliver.run(fake.box, seen, decision))

    assert sorted(fake.images.delivered) == sorted(seen.desired.images.values())
    assert deciding.decide(after).state is deciding.CycleState.OUT_OF_SYNC


def test_deliver_after_an_image_went_missing_deletes_the_stuck_pod_and_watches_again(
    project: pathlib.Path,
) -> None:
    fake = _installed(project)
    saved = state.load(fake.box.state_dir).state
    image = f"{saved.services['backend'].image}:{saved.services['backend'].tag}"
    stuck = fakes.crashing_pod("backend-stuck", NAMESPACE, "backend", image)
    fake.kube.put(stuck)
    attempt = observing.Rollout(1, None, {"backend": image}, applied_now=False)
    missing = rollout.RolloutResult(
        rollout.Verdict.FAILED,
        3.0,
        rollout.Diagnosis(
            "backend", rollout.FailureReason.IMAGE_MISSING, "not on the node", "backend-stuck"
        ),
    )
    seen = dataclasses.replace(_observe(fake), failure=observing.Failure(attempt, missing))
    decision = deciding.Decision(deciding.CycleState.UNDELIVERED, "image gone", ("backend",))

    after = asyncio.run(deliver.run(fake.box, seen, decision))

    assert fake.images.delivered == [image]
    assert fake.journal.writes() == ["delete Pod lumina/backend-stuck"]
    assert fake.kube.get("v1", "Pod", NAMESPACE, "backend-stuck") is None
    assert after.failure is None and after.pending_rollout == attempt


def test_verify_says_ready_when_the_new_pods_serve(project: pathlib.Path) -> None:
    fake = _fakes(project)
    seen = _observe(fake)
    seen, _ = _act_until(fake, seen, deciding.Action.VERIFY)
    decision = deciding.decide(seen)
    assert decision.state is deciding.CycleState.UNVERIFIED

    after = asyncio.run(verify.run(fake.box, seen, decision))

    assert after.verified_revision == 1
    assert after.rollout_result is not None
    assert after.rollout_result.verdict is rollout.Verdict.READY
    assert deciding.decide(after).state is deciding.CycleState.UNRECORDED


def test_verify_names_a_crashing_pod_with_its_last_log_lines(project: pathlib.Path) -> None:
    fake = _fakes(project)
    seen = _observe(fake)
    assert seen.desired is not None
    fake.releases.failing[seen.desired.images["backend"]] = "crash"
    fake.kube.logs["backend-new"] = "starting\nsqlite3.OperationalError: no such table: todo\n"
    seen, _ = _act_until(fake, seen, deciding.Action.VERIFY)

    after = asyncio.run(verify.run(fake.box, seen, deciding.decide(seen)))

    assert after.failure is not None
    diagnosis = after.failure.result.diagnosis
    assert diagnosis is not None
    assert diagnosis.reason is rollout.FailureReason.CRASH_LOOP
    assert diagnosis.logs[-1] == "sqlite3.OperationalError: no such table: todo"
    assert deciding.decide(after).state is deciding.CycleState.ROLLOUT_FAILED


def test_record_writes_what_the_verified_release_runs(project: pathlib.Path) -> None:
    fake = _fakes(project)
    seen = _observe(fake)
    seen, decision = _act_until(fake, seen, deciding.Action.RECORD)
    assert state.load(fake.box.state_dir).state.revision is None
    assert seen.desired is not None

    asyncio.run(record.run(fake.box, seen, decision))

    saved = state.load(fake.box.state_dir).state
    assert saved.revision == 1
    assert {n: f"{i.image}:{i.tag}" for n, i in saved.services.items()} == dict(seen.desired.images)


def test_unlock_rolls_a_pending_release_back_and_reads_it_again(project: pathlib.Path) -> None:
    fake = _installed(project)
    fake.releases.revision = 2
    fake.releases.history.append(
        helm.ReleaseState(2, "pending-install", fake.releases.history[-1].values)
    )
    seen = _observe(fake)
    decision = deciding.decide(seen)
    assert decision.state is deciding.CycleState.LOCKED

    after = asyncio.run(unlock.run(fake.box, seen, decision))

    assert fake.journal.helm() == ["helm recover"]
    assert after.release is not None and after.release.status == "deployed"
    assert after.release.revision == 3
    assert after.notes[-1] == "recovered: rolled back pending-install revision 2"


# -- the upgrade's protection: a trial start on a copy of the data ---------------------


def _template(image: str) -> fakes.Object:
    probe = {"httpGet": {"path": "/api/health", "port": 8000}}
    return {
        "metadata": {"labels": {"app.kubernetes.io/name": "backend"}},
        "spec": {
            "containers": [
                {
                    "name": "backend",
                    "image": image,
                    "livenessProbe": probe,
                    "readinessProbe": probe,
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "backend-data"}}],
        },
    }


def _chart_deployment(image: str) -> fakes.Object:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "backend", "namespace": NAMESPACE},
        "spec": {"replicas": 1, "strategy": {"type": "Recreate"}, "template": _template(image)},
    }


def _serving_pod(image: str) -> fakes.Object:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "backend-old",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "backend"},
        },
        "spec": {"nodeName": "node-1", "containers": [{"name": "backend", "image": image}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "backend",
                    "ready": True,
                    "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                }
            ],
        },
    }


def _trial_exits(pod: fakes.Object) -> fakes.Object:
    """The kubelet: a trial pod's container exits 1 (the new image cannot start)."""
    if trial_pods.TRIAL_LABEL in pod["metadata"].get("labels", {}):
        pod["status"] = {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "backend",
                    "ready": False,
                    "state": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
            ],
        }
    return pod


def test_a_failed_trial_refuses_the_upgrade_after_the_backup_and_leaves_the_pod_serving(
    project: pathlib.Path,
) -> None:
    fake = _installed(project)
    old = _image(fake.kube.get("apps/v1", "Deployment", NAMESPACE, "backend"))
    fake.kube.put(_serving_pod(old))
    backup = "/data/backups/rev1-before-new.db"
    fake.kube.commands = lambda argv: kube.ExecResult(
        0, json.dumps({"path": backup, "size": 4096}), ""
    )
    fake.kube.kubelet = _trial_exits
    (project / "services/backend/app/main.py").write_text("app = 'backend, edited'\n")
    seen = _observe(fake)
    assert seen.desired is not None
    fake.releases.deployed = [_chart_deployment(old)]
    fake.releases.rendered = [_chart_deployment(seen.desired.images["backend"])]
    seen = dataclasses.replace(
        seen, built=frozenset(seen.desired.tags), delivered=frozenset(seen.desired.tags)
    )
    decision = deciding.decide(seen)
    assert decision.state is deciding.CycleState.OUT_OF_SYNC

    with pytest.raises(trial_pods.TrialStartFailedError) as refused:
        asyncio.run(upgrade.run(fake.box, seen, decision))

    assert refused.value.outcome == "trial-failed"
    assert "exit code 1" in str(refused.value)
    calls = fake.journal.calls
    assert "helm upgrade --install lumina" not in calls, "the failed image reached Helm"
    backed_up = next(i for i, c in enumerate(calls) if c.startswith("exec lumina/backend-old"))
    trial = next(i for i, c in enumerate(calls) if c.startswith("apply Pod lumina/backend-trial"))
    assert backed_up < trial, "the trial ran before the backup it copies"
    # The trial pod is gone; the serving pod and its Deployment are as they were.
    assert not [key for key in fake.kube.objects if key[0] == "Pod" and "trial" in key[2]]
    assert fake.kube.get("v1", "Pod", NAMESPACE, "backend-old") is not None
    assert _image(fake.kube.get("apps/v1", "Deployment", NAMESPACE, "backend")) == old


def _trial_passes_revert_restores(pod: fakes.Object) -> fakes.Object:
    """The kubelet: a trial becomes ready; a revert pod runs to its end."""
    labels = pod["metadata"].get("labels", {})
    if trial_pods.TRIAL_LABEL in labels:
        pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    elif trial_pods.REVERT_LABEL in labels:
        pod["status"] = {"phase": "Succeeded"}
    return pod


def test_remediate_restores_the_migrated_data_then_rolls_back_to_the_old_pods(
    project: pathlib.Path,
) -> None:
    """A new backend migrated the database and crashed: the old image cannot read that
    schema, so the data goes back to the pre-upgrade backup before the rollback."""
    fake = _installed(project)
    old = _image(fake.kube.get("apps/v1", "Deployment", NAMESPACE, "backend"))
    fake.kube.put(_serving_pod(old))
    backup = "/data/backups/rev1-before-new.db"
    fake.kube.commands = lambda argv: kube.ExecResult(
        0, json.dumps({"path": backup, "size": 4096}), ""
    )
    fake.kube.kubelet = _trial_passes_revert_restores
    fake.kube.logs["backend-revert"] = json.dumps(
        {
            "restored": {"name": "rev1-before-new.db"},
            "previous": {"name": "migrated-kept.db"},
            "reason": "the schema moved",
        }
    )
    (project / "services/backend/app/main.py").write_text("app = 'backend, migrating'\n")
    seen = _observe(fake)
    assert seen.desired is not None
    new = seen.desired.images["backend"]
    fake.releases.failing[new] = "crash"
    fake.releases.deployed = [_chart_deployment(old)]
    fake.releases.rendered = [_chart_deployment(new)]
    seen, decision = _act_until(fake, seen, deciding.Action.REMEDIATE)
    assert seen.failure is not None and seen.failure.attempt.backups == {"backend": backup}
    fake.journal.calls.clear()

    after = asyncio.run(remediate.run(fake.box, seen, decision))

    assert after.rolled_back is not None
    assert "backend: restored the database from rev1-before-new.db (the schema moved)" in (
        after.rolled_back
    )
    assert "the migrated one is kept as migrated-kept.db" in after.rolled_back
    assert "rolled back to revision 1 (now revision 3), serving again" in after.rolled_back
    writes = fake.journal.writes()
    stopped = writes.index("apply Deployment lumina/backend")
    reverted = writes.index("apply Pod lumina/backend-revert")
    assert stopped < reverted < writes.index("helm rollback 1"), writes
    assert fake.kube.get("v1", "Pod", NAMESPACE, "backend-revert") is None
    live = fake.kube.get("apps/v1", "Deployment", NAMESPACE, "backend")
    assert _image(live) == old
    assert after.saved.revision == 3
    assert deciding.decide(after).state is deciding.CycleState.ROLLED_BACK


def test_a_revert_is_recorded_as_pending_while_it_runs_and_cleared_when_it_ends(
    project: pathlib.Path,
) -> None:
    """Issue 23: a daemon killed between scaling the service to none and the end of
    its revert left the data migrated and nothing to say so: the next start applied the
    old image onto that schema and rolled back into a crash. ``state.json`` now names
    the revert from before the scale-down to its end, and the next cycle finishes it
    before anything else (``revert-unfinished``)."""
    fake = _installed(project)
    old = _image(fake.kube.get("apps/v1", "Deployment", NAMESPACE, "backend"))
    fake.kube.put(_serving_pod(old))
    backup = "/data/backups/rev1-before-new.db"
    fake.kube.commands = lambda argv: kube.ExecResult(
        0, json.dumps({"path": backup, "size": 4096}), ""
    )
    pending_while_reverting: list[dict[str, dict[str, str]]] = []

    def kubelet(pod: fakes.Object) -> fakes.Object:
        if trial_pods.REVERT_LABEL in pod["metadata"].get("labels", {}):
            # What a kill at this moment would leave on disk.
            pending_while_reverting.append(fake.box.deps.store.load().state.reverts_pending)
        return _trial_passes_revert_restores(pod)

    fake.kube.kubelet = kubelet
    fake.kube.logs["backend-revert"] = json.dumps({"kept": True, "reason": "same schema"})
    (project / "services/backend/app/main.py").write_text("app = 'backend, migrating'\n")
    seen = _observe(fake)
    assert seen.desired is not None
    new = seen.desired.images["backend"]
    fake.releases.failing[new] = "crash"
    fake.releases.deployed = [_chart_deployment(old)]
    fake.releases.rendered = [_chart_deployment(new)]
    seen, decision = _act_until(fake, seen, deciding.Action.REMEDIATE)

    asyncio.run(remediate.run(fake.box, seen, decision))

    assert pending_while_reverting == [{"backend": {"backup": backup, "image": old}}]
    assert fake.box.deps.store.load().state.reverts_pending == {}
    left = fake.box.deps.store.load().state.model_copy(
        update={"reverts_pending": {"backend": {"backup": backup, "image": old}}}
    )
    again = dataclasses.replace(seen, saved=left, failure=None, pending_rollout=None)
    assert deciding.decide(again).state is deciding.CycleState.REVERT_UNFINISHED


def test_after_a_rollback_a_service_a_revert_left_at_no_pods_gets_its_replicas_back() -> None:
    """Issue 23: killed during the rollback that follows a revert, the next remedy's own
    rollback left the backend at 0 pods (the revert's scale-down is ours, and Helm did
    not take that field back); the remedy now scales it back to its manifest's replicas."""
    journal = fakes.Journal()

    def deployment(name: str, replicas: int) -> fakes.Object:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas},
        }

    namespace: fakes.Object = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE},
    }
    cluster = fakes.FakeKube(
        journal, [namespace, deployment("backend", 0), deployment("chatbot", 1)]
    )
    manifests = [deployment("backend", 1), deployment("chatbot", 1), deployment("frontend", 2)]

    scaled = asyncio.run(trial_pods.scale_back(cluster, NAMESPACE, manifests))

    assert scaled == ["backend"]
    backend = cluster.get("apps/v1", "Deployment", NAMESPACE, "backend")
    assert backend is not None and backend["spec"]["replicas"] == 1
    assert [call for call in journal.writes()] == ["apply Deployment lumina/backend"]
