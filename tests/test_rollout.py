"""Failure classification over pod objects shaped exactly as the API serves them."""

from __future__ import annotations

import datetime
from typing import Any

import fakes

from reconciler.cluster import rollout

NOW = datetime.datetime(2026, 11, 28, 12, 0, 0, tzinfo=datetime.UTC)


def _pod(
    container_status: dict[str, Any] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    volumes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "backend-7d9f-abcde"},
        "spec": {
            "containers": [{"name": "backend", "image": "lumina/backend:new"}],
            "volumes": volumes or [],
        },
        "status": {
            "conditions": conditions or [],
            "containerStatuses": [container_status] if container_status else [],
        },
    }


def test_crash_loop_is_named_with_exit_code() -> None:
    pod = _pod(
        {
            "name": "backend",
            "ready": False,
            "restartCount": 3,
            "image": "lumina/backend:new",
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}},
        }
    )
    found = rollout.classify("backend", pod, [], {}, NOW)
    assert found is not None and found.reason is rollout.FailureReason.CRASH_LOOP
    assert "exit code 3" in found.summary and "restarted 3 times" in found.summary


def test_image_missing_from_the_node() -> None:
    pod = _pod(
        {
            "name": "backend",
            "ready": False,
            "restartCount": 0,
            "image": "lumina/backend:new",
            "state": {
                "waiting": {
                    "reason": "ErrImageNeverPull",
                    "message": "image not present with pull policy of Never",
                }
            },
        }
    )
    found = rollout.classify("backend", pod, [], {}, NOW)
    assert found is not None and found.reason is rollout.FailureReason.IMAGE_MISSING
    assert "lumina/backend:new" in found.summary


def _config_error(message: str) -> dict[str, Any]:
    return _pod(
        {
            "name": "backend",
            "ready": False,
            "restartCount": 0,
            "image": "lumina/backend:new",
            "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}},
        }
    )


def test_a_missing_configmap_key_is_a_config_failure() -> None:
    pod = _config_error("couldn't find key BACKEND_URL in ConfigMap lumina/frontend-config")
    found = rollout.classify("backend", pod, [], {}, NOW)
    assert found is not None and found.reason is rollout.FailureReason.CONFIG
    assert "BACKEND_URL" in found.summary


def test_a_kubelet_cache_that_has_not_synced_yet_is_not_a_failure() -> None:
    """Seen right after an API server restart: the kubelet retries and the pod starts."""
    pod = _config_error("failed to sync configmap cache: timed out waiting for the condition")
    assert rollout.classify("backend", pod, [], {}, NOW) is None


def test_unschedulable_only_after_patience() -> None:
    def pending(seconds_ago: int) -> dict[str, Any]:
        when = (NOW - datetime.timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
        return _pod(
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient memory.",
                    "lastTransitionTime": when,
                }
            ]
        )

    assert rollout.classify("backend", pending(2), [], {}, NOW) is None
    found = rollout.classify("backend", pending(60), [], {}, NOW)
    assert found is not None and found.reason is rollout.FailureReason.UNSCHEDULABLE
    assert "Insufficient memory" in found.summary


def test_unbound_claim_is_named() -> None:
    when = (NOW - datetime.timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    pod = _pod(
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "pod has unbound immediate PersistentVolumeClaims",
                "lastTransitionTime": when,
            }
        ],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "backend-data"}}],
    )
    claims = {
        "backend-data": {"metadata": {"name": "backend-data"}, "status": {"phase": "Pending"}}
    }
    found = rollout.classify("backend", pod, [], claims, NOW)
    assert found is not None and found.reason is rollout.FailureReason.UNBOUND_CLAIM
    assert "backend-data" in found.summary


def test_multi_attach_event() -> None:
    events = [
        {
            "type": "Warning",
            "reason": "FailedAttachVolume",
            "message": 'Multi-Attach error for volume "pvc-1" '
            "Volume is already used by pod(s) backend-old",
            "firstTimestamp": NOW.isoformat(),
        }
    ]
    found = rollout.classify("backend", _pod(), events, {}, NOW)
    assert found is not None and found.reason is rollout.FailureReason.VOLUME
    assert found.events and "Multi-Attach" in found.events[-1]


def test_a_starting_pod_is_not_a_failure() -> None:
    pod = _pod(
        {
            "name": "backend",
            "ready": False,
            "restartCount": 0,
            "image": "lumina/backend:new",
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }
    )
    assert rollout.classify("backend", pod, [], {}, NOW) is None


def test_diagnosis_round_trips_through_json() -> None:
    found = rollout.Diagnosis(
        "backend",
        rollout.FailureReason.CRASH_LOOP,
        "keeps crashing",
        "pod-1",
        ("RuntimeError: boom",),
        ("Warning BackOff: restarting",),
    )
    assert rollout.Diagnosis.from_json(found.to_json()) == found
    text = found.explain()
    assert "CrashLoopBackOff" in text and "| RuntimeError: boom" in text


def _deployment(replicas: int, ready: int) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "backend", "namespace": "lumina", "generation": 2},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"image": "lumina/backend:abc"}]}},
        },
        "status": {
            "observedGeneration": 2,
            "replicas": ready,
            "updatedReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_a_deployment_scaled_to_none_is_never_ready_and_is_a_certain_failure() -> None:
    """Issue 23: a revert cut short by SIGTERM leaves the backend at 0 replicas, and
    0 of 0 counted as ready, so the next start verified a revision nothing served."""
    assert rollout.deployment_ready(_deployment(1, 1), "lumina/backend:abc")
    assert not rollout.deployment_ready(_deployment(0, 0), "lumina/backend:abc")
    journal = fakes.Journal()
    cluster = fakes.FakeKube(
        journal,
        [{"kind": "Namespace", "metadata": {"name": "lumina"}}, _deployment(0, 0)],
    )
    waiting, diagnosis = rollout.judge(cluster, "lumina", {"backend": "lumina/backend:abc"})
    assert waiting == ["backend"]
    assert diagnosis is not None
    assert diagnosis.reason is rollout.FailureReason.SCALED_TO_ZERO
