"""The cycle's decider: every state it can name, and the one action each calls for.

In the style of Flux's ``TestAtomicRelease_actionForState``: observations are built as
data (the decider is pure), one per state, and the table says what the cycle does.
A second part runs the real ``plan --json`` and the cycle's own observe step on one
repository and checks they decide the same — there is one decider.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import fakes
import pytest
from conftest import PlanRunner, rebuilds, write

from reconciler import discovery, settings
from reconciler.cluster import rollout
from reconciler.cycle import deciding, observing, planning, state
from reconciler.cycle.actions import record
from reconciler.inputs import contexts, snapshots, trees, worktree_reading
from reconciler.releasing import helm

S = deciding.CycleState
A = deciding.Action

BACKEND_OLD = "lumina/backend:" + "a" * 24
BACKEND_NEW = "lumina/backend:" + "b" * 24
FRONTEND = "lumina/frontend:" + "f" * 24


def _inputs(name: str, digest: str) -> contexts.ServiceInputs:
    return contexts.ServiceInputs(
        name,  # type: ignore[arg-type]
        digest,
        {f"services/{name}/Dockerfile": trees.FileEntry("100644", digest[:8])},
    )


def _desired(
    backend: str = BACKEND_NEW, inputs: str = "inputs-1", secrets: dict[str, str] | None = None
) -> observing.Desired:
    snapshot = snapshots.Snapshot(
        "work tree",
        (_inputs("backend", backend.split(":")[1] * 2), _inputs("frontend", "f" * 48)),
        "chart-digest",
        {},
    )
    tags = {"backend": backend.split(":")[1], "frontend": FRONTEND.split(":")[1]}
    return observing.Desired(
        snapshot,
        tags,
        {"backend": backend, "frontend": FRONTEND},
        inputs,
        f"key-{backend}",
        secrets or {},
    )


def _saved(backend: str = BACKEND_OLD, revision: int | None = 3) -> state.State:
    def image(reference: str) -> state.DeployedImage:
        repository, tag = reference.split(":")
        return state.DeployedImage(digest=tag * 2, tag=tag, image=repository)

    return state.State(
        services={"backend": image(backend), "frontend": image(FRONTEND)},
        chart_digest="chart-digest",
        release_inputs="inputs-1",
        revision=revision,
    )


def _seen(
    *,
    live_backend: str = BACKEND_OLD,
    status: str = "deployed",
    revision: int = 3,
    read: bool = True,
    saved: state.State | None = None,
    desired: observing.Desired | None = None,
    **changes: Any,
) -> observing.Observation:
    wanted = desired or _desired()
    saved = saved if saved is not None else _saved()
    release = helm.ReleaseState(revision, status, {})
    baseline = planning.Baseline(
        label=f"release revision {revision}",
        digests={name: image.digest for name, image in saved.services.items()},
        files={},
        chart_digest="chart-digest",
        images={"backend": live_backend, "frontend": FRONTEND},
        release_inputs="inputs-1",
    )
    running = frozenset(
        name for name, image in (baseline.images or {}).items() if wanted.images[name] == image
    )
    seen = observing.Observation(
        observing.Request(),
        "",
        wanted,
        saved,
        "",
        release if read else None,
        read,
        baseline,
        built=running,
        delivered=running,
    )
    return dataclasses.replace(seen, **changes)


ATTEMPT = observing.Rollout(4, 3, {"backend": BACKEND_NEW}, applied_now=True)
CRASH = rollout.RolloutResult(
    rollout.Verdict.FAILED,
    14.0,
    rollout.Diagnosis("backend", rollout.FailureReason.CRASH_LOOP, "keeps crashing"),
)

LOST = rollout.RolloutResult(
    rollout.Verdict.FAILED,
    1.0,
    rollout.Diagnosis("backend", rollout.FailureReason.IMAGE_MISSING, "not in the node", "pod-1"),
)
ADOPTED = observing.Rollout(3, None, {"backend": BACKEND_NEW}, applied_now=False)

CASES: dict[str, tuple[observing.Observation, S, tuple[str, ...]]] = {
    "git mid-merge": (_seen(paused="a merge is in progress", desired=None), S.PAUSED, ()),
    "release pending-upgrade": (_seen(status="pending-upgrade"), S.LOCKED, ()),
    "a data revert cut short": (
        _seen(
            status="pending-upgrade",
            saved=_saved().model_copy(
                update={"reverts_pending": {"backend": {"backup": "b.db", "image": BACKEND_OLD}}}
            ),
        ),
        S.REVERT_UNFINISHED,
        ("backend",),
    ),
    "orphan helm still writing": (
        _seen(status="pending-rollback", helm_writers=(4242,)),
        S.LOCKED,
        (),
    ),
    "inputs failed before": (
        _seen(
            saved=_saved().model_copy(
                update={"last_failure": {"target": f"key-{BACKEND_NEW}", "outcome": "x"}}
            )
        ),
        S.KNOWN_FAILURE,
        (),
    ),
    "release and state run the repository": (
        _seen(live_backend=BACKEND_NEW, saved=_saved(BACKEND_NEW)),
        S.IN_SYNC,
        (),
    ),
    "state trusted without reading the release": (
        _seen(live_backend=BACKEND_NEW, saved=_saved(BACKEND_NEW), read=False),
        S.IN_SYNC,
        (),
    ),
    "release runs it, never seen ready": (
        _seen(live_backend=BACKEND_NEW, revision=4, saved=_saved(BACKEND_OLD, revision=3)),
        S.UNVERIFIED,
        ("backend", "frontend"),
    ),
    "release runs it, damaged state rebuilt empty": (
        _seen(live_backend=BACKEND_NEW, revision=4, saved=state.State()),
        S.UNVERIFIED,
        ("backend", "frontend"),
    ),
    "verified, not yet recorded": (
        _seen(live_backend=BACKEND_NEW, revision=4, verified_revision=4),
        S.UNRECORDED,
        (),
    ),
    "backend image exists nowhere": (_seen(), S.IMAGES_MISSING, ("backend",)),
    "backend built, not in the node": (
        _seen(built=frozenset({"backend", "frontend"})),
        S.UNDELIVERED,
        ("backend",),
    ),
    "backend built and delivered": (
        _seen(
            built=frozenset({"backend", "frontend"}), delivered=frozenset({"backend", "frontend"})
        ),
        S.OUT_OF_SYNC,
        ("backend",),
    ),
    "chart values changed, no image": (
        _seen(
            live_backend=BACKEND_NEW,
            saved=_saved(BACKEND_NEW),
            desired=_desired(inputs="inputs-2"),
        ),
        S.OUT_OF_SYNC,
        (),
    ),
    "last revision failed to apply": (
        _seen(live_backend=BACKEND_NEW, status="failed", saved=_saved(BACKEND_NEW)),
        S.OUT_OF_SYNC,
        (),
    ),
    "drift to correct": (
        _seen(
            live_backend=BACKEND_NEW,
            saved=_saved(BACKEND_NEW),
            request=observing.Request(force_upgrade=True),
        ),
        S.OUT_OF_SYNC,
        (),
    ),
    "drift corrected by this cycle's upgrade": (
        _seen(
            live_backend=BACKEND_NEW,
            revision=4,
            saved=_saved(BACKEND_NEW),
            request=observing.Request(force_upgrade=True),
            verified_revision=4,
            converged_revision=4,
        ),
        S.UNRECORDED,
        (),
    ),
    "a secret rotated": (
        _seen(
            live_backend=BACKEND_NEW,
            saved=_saved(BACKEND_NEW).model_copy(
                update={"secret_fingerprints": {"backend-secrets": "old", "chatbot-secrets": "c"}}
            ),
            desired=_desired(secrets={"backend-secrets": "new", "chatbot-secrets": "c"}),
        ),
        S.OUT_OF_SYNC,
        (),
    ),
    "a rotation this cycle's upgrade deployed": (
        _seen(
            live_backend=BACKEND_NEW,
            revision=4,
            saved=_saved(BACKEND_NEW).model_copy(
                update={"secret_fingerprints": {"backend-secrets": "old"}}
            ),
            desired=_desired(secrets={"backend-secrets": "new"}),
            verified_revision=4,
            converged_revision=4,
        ),
        S.UNRECORDED,
        (),
    ),
    "secrets not yet noted": (
        _seen(
            live_backend=BACKEND_NEW,
            saved=_saved(BACKEND_NEW),
            desired=_desired(secrets={"backend-secrets": "new"}),
        ),
        S.UNRECORDED,
        (),
    ),
    "upgrade applied, pods not judged yet": (
        _seen(pending_rollout=ATTEMPT),
        S.UNVERIFIED,
        ("backend",),
    ),
    "rollout crashed": (
        _seen(failure=observing.Failure(ATTEMPT, CRASH)),
        S.ROLLOUT_FAILED,
        ("backend",),
    ),
    "the node lost the release's image": (
        _seen(live_backend=BACKEND_NEW, failure=observing.Failure(ADOPTED, LOST)),
        S.IMAGES_MISSING,
        ("backend",),
    ),
    "lost image found in the engine again": (
        _seen(
            live_backend=BACKEND_NEW,
            failure=observing.Failure(ADOPTED, LOST),
            reused=("backend",),
        ),
        S.UNDELIVERED,
        ("backend",),
    ),
    "lost image delivered again, still missing": (
        _seen(
            live_backend=BACKEND_NEW,
            failure=observing.Failure(ADOPTED, LOST),
            reused=("backend",),
            redelivered=frozenset({"backend"}),
        ),
        S.ROLLOUT_FAILED,
        ("backend",),
    ),
    "rolled back": (_seen(rolled_back="rolled back to revision 3"), S.ROLLED_BACK, ()),
}

ACTION_TABLE = {
    S.PAUSED: A.NONE,
    S.LOCKED: A.UNLOCK,
    S.REVERT_UNFINISHED: A.REVERT,
    S.KNOWN_FAILURE: A.NONE,
    S.IN_SYNC: A.NONE,
    S.UNRECORDED: A.RECORD,
    S.UNVERIFIED: A.VERIFY,
    S.IMAGES_MISSING: A.BUILD,
    S.UNDELIVERED: A.DELIVER,
    S.OUT_OF_SYNC: A.UPGRADE,
    S.ROLLOUT_FAILED: A.REMEDIATE,
    S.ROLLED_BACK: A.NONE,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_observation_decides_one_state_and_its_action(case: str) -> None:
    seen, expected_state, expected_services = CASES[case]
    decision = deciding.decide(seen)
    assert decision.state is expected_state, decision.reason
    assert decision.action is ACTION_TABLE[expected_state]
    assert decision.services == expected_services


def test_a_rotated_secret_is_named_and_its_value_is_not() -> None:
    decision = deciding.decide(CASES["a secret rotated"][0])
    assert decision.reason == "secrets changed: backend-secrets"


def test_every_state_is_reachable_and_mapped() -> None:
    assert set(deciding.ACTION_FOR_STATE) == set(S)
    assert deciding.ACTION_FOR_STATE == ACTION_TABLE
    assert {state for _seen, state, _services in CASES.values()} == set(S)


def _record_head(project: pathlib.Path) -> observing.Sources:
    """Record HEAD as deployed, through the record action's own writer."""
    config = settings.load_settings(project)
    plugins = discovery.discover_services(project).plugins
    state_dir = config.repo_path(config.state_dir)
    sources = observing.Sources(
        config, plugins, worktree_reading.HashCache(state_dir / "cache" / "hashes.json")
    )
    seen = observing.observe_saved(sources, observing.Request())

    record._write(fakes.toolbox(config, plugins).box, seen, 1)
    return sources


EDITS = {
    "backend source": ("services/backend/app/main.py", "app = 'v2'\n"),
    "docs only": ("README.md", "# docs\n"),
    "dockerignored file": ("services/backend/README.md", "ignored\n"),
    "chatbot Dockerfile": ("services/chatbot/Dockerfile", "FROM python:3.13-slim\nCOPY app /srv\n"),
    "chart": ("helm/lumina-todo/values.yaml", "# a chart edit\n"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_plan_and_the_cycle_decide_the_same(
    project: pathlib.Path, plan_json: PlanRunner, edit: str
) -> None:
    sources = _record_head(project)
    assert plan_json(project)["decision"]["state"] == "in-sync"  # type: ignore[index]
    path, content = EDITS[edit]
    target = project / path
    write(project, path, (target.read_text() if target.exists() else "") + content)
    shown = plan_json(project)
    since = plan_json(project, "--since", "HEAD")
    cycle = deciding.decide(observing.observe_saved(sources, observing.Request()))
    assert shown["decision"] == cycle.to_json()  # type: ignore[comparison-overlap]
    assert rebuilds(shown) == rebuilds(since)
    expected = {service.name for service in cycle.plan.rebuilds} if cycle.plan else set()
    assert rebuilds(shown) == expected
    assert shown["helm_upgrade"] == since["helm_upgrade"]
