"""Watching a rollout and explaining a failure in words, with evidence.

Who calls it: the cycle's verify and remediate actions (:mod:`reconciler.cycle.actions`),
which own the wait after Helm applied a release, and the ``diagnose`` command.
Classification is pure (:func:`classify`) over API objects; :func:`await_rollout`
watches pods and Deployments through :class:`reconciler.cluster.kube.Kube` and judges
every change. A failure is reported as soon as it is certain — CrashLoopBackOff, an
image the node does not have, a pod that cannot be scheduled, a volume attached
elsewhere — instead of sitting out a whole timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import enum
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler import errors
from reconciler.cluster import kube

NAME_LABEL = "app.kubernetes.io/name"
#: How long a pod may stay unschedulable or a volume unmounted before it is a failure:
#: the scheduler retries, and Recreate frees a volume only when the old pod is gone.
PATIENCE_SECONDS = 20.0
_IMAGE_REASONS = {"ImagePullBackOff", "ErrImagePull", "ErrImageNeverPull", "InvalidImageName"}
_CONFIG_REASONS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
#: The kubelet says these while its own caches or the API catch up (e.g. just after an
#: API server restart); it retries by itself, so they prove nothing about the release.
_KUBELET_BLINKS = ("failed to sync", "timed out waiting for the condition", "deadline exceeded")


class FailureReason(enum.StrEnum):
    CRASH_LOOP = "CrashLoopBackOff"
    IMAGE_MISSING = "ImageNotInCluster"
    CONFIG = "ContainerConfigError"
    UNSCHEDULABLE = "Unschedulable"
    VOLUME = "VolumeNotAttachable"
    UNBOUND_CLAIM = "UnboundPersistentVolumeClaim"
    NOT_READY = "NotReady"
    SCALED_TO_ZERO = "ScaledToZero"


@dataclasses.dataclass(frozen=True)
class Diagnosis:
    service: str
    reason: FailureReason
    summary: str
    pod: str = ""
    logs: tuple[str, ...] = ()
    events: tuple[str, ...] = ()

    def explain(self) -> str:
        lines = [f"{self.service}: {self.reason.value} — {self.summary}"]
        if self.pod:
            lines.append(f"  pod: {self.pod}")
        if self.logs:
            lines.append("  last log lines:")
            lines.extend(f"    | {line}" for line in self.logs)
        if self.events:
            lines.append("  events:")
            lines.extend(f"    - {event}" for event in self.events)
        return "\n".join(lines)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnosis:
        return cls(
            service=str(data["service"]),
            reason=FailureReason(data["reason"]),
            summary=str(data["summary"]),
            pod=str(data.get("pod", "")),
            logs=tuple(data.get("logs", ())),
            events=tuple(data.get("events", ())),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "reason": self.reason.value,
            "summary": self.summary,
            "pod": self.pod,
            "logs": list(self.logs),
            "events": list(self.events),
        }


def _age(timestamp: str | None, now: datetime.datetime) -> float:
    if not timestamp:
        return 0.0
    started = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return (now - started).total_seconds()


def event_lines(events: Iterable[kube.Object]) -> tuple[str, ...]:
    ordered = sorted(
        events, key=lambda event: str(event.get("lastTimestamp") or event.get("eventTime") or "")
    )
    return tuple(
        f"{event.get('type', '')} {event.get('reason', '')}: "
        f"{str(event.get('message', '')).strip()}"
        for event in ordered[-6:]
    )


def classify(
    service: str,
    pod: kube.Object,
    events: Iterable[kube.Object],
    claims: Mapping[str, kube.Object],
    now: datetime.datetime,
) -> Diagnosis | None:
    """Why ``pod`` is certain to fail, or None while it may still come up."""
    name = str(pod.get("metadata", {}).get("name", ""))
    status = pod.get("status", {})
    events = list(events)
    evidence = event_lines(events)
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        message = str(waiting.get("message", "")).strip()
        if reason == "CrashLoopBackOff" or (
            int(container.get("restartCount", 0)) >= 2 and not container.get("ready")
        ):
            last = (container.get("lastState") or {}).get("terminated") or {}
            exit_info = f" (exit code {last['exitCode']}, {last.get('reason', '')})" if last else ""
            return Diagnosis(
                service,
                FailureReason.CRASH_LOOP,
                f"container {container.get('name')} keeps crashing{exit_info}; "
                f"restarted {container.get('restartCount', 0)} times",
                name,
                (),
                evidence,
            )
        if reason in _IMAGE_REASONS:
            return Diagnosis(
                service,
                FailureReason.IMAGE_MISSING,
                f"image {container.get('image')} is not in the cluster's runtime "
                f"({reason}: {message})",
                name,
                (),
                evidence,
            )
        if reason in _CONFIG_REASONS and not any(
            blink in message.lower() for blink in _KUBELET_BLINKS
        ):
            return Diagnosis(
                service, FailureReason.CONFIG, f"{reason}: {message}", name, (), evidence
            )
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and _age(condition.get("lastTransitionTime"), now) >= PATIENCE_SECONDS
        ):
            volumes = pod.get("spec", {}).get("volumes") or []
            for volume in volumes:
                claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                claim = claims.get(claim_name or "")
                if claim_name and (
                    claim is None or claim.get("status", {}).get("phase") != "Bound"
                ):
                    return Diagnosis(
                        service,
                        FailureReason.UNBOUND_CLAIM,
                        f"PersistentVolumeClaim {claim_name} is not bound "
                        "(no StorageClass or provisioner can satisfy it)",
                        name,
                        (),
                        evidence,
                    )
            return Diagnosis(
                service,
                FailureReason.UNSCHEDULABLE,
                f"cannot be scheduled: {condition.get('message', condition.get('reason', ''))}",
                name,
                (),
                evidence,
            )
    for event in events:
        message = str(event.get("message", ""))
        if event.get("reason") in ("FailedAttachVolume", "FailedMount") and (
            "Multi-Attach" in message
            or _age(event.get("firstTimestamp"), now) >= 3 * PATIENCE_SECONDS
        ):
            return Diagnosis(service, FailureReason.VOLUME, message.strip(), name, (), evidence)
    return None


def _pods(cluster: kube.Connection, namespace: str, service: str) -> list[kube.Object]:
    return cluster.list("v1", "Pod", namespace, label_selector=f"{NAME_LABEL}={service}")


def pod_events(cluster: kube.Connection, namespace: str, pod: str) -> list[kube.Object]:
    return cluster.list(
        "v1",
        "Event",
        namespace,
        field_selector=f"involvedObject.name={pod},involvedObject.kind=Pod",
    )


def _with_logs(
    cluster: kube.Connection, namespace: str, found: Diagnosis, pod: kube.Object
) -> Diagnosis:
    if found.reason is not FailureReason.CRASH_LOOP:
        return found
    containers = pod.get("status", {}).get("containerStatuses") or [{}]
    container = str(containers[0].get("name", ""))
    text = cluster.pod_log(
        namespace, found.pod, container, previous=True, lines=15
    ) or cluster.pod_log(namespace, found.pod, container, previous=False, lines=15)
    return dataclasses.replace(
        found, logs=tuple(line for line in text.splitlines() if line.strip())[-15:]
    )


def inspect(
    cluster: kube.Connection, namespace: str, service: str, *, image: str | None = None
) -> Diagnosis | None:
    """The first certain failure among ``service``'s pods (those running ``image``, if given)."""
    now = datetime.datetime.now(datetime.UTC)
    claims = {
        str(claim["metadata"]["name"]): claim
        for claim in cluster.list("v1", "PersistentVolumeClaim", namespace)
    }
    for pod in _pods(cluster, namespace, service):
        if pod.get("metadata", {}).get("deletionTimestamp"):
            continue
        images = {container.get("image") for container in pod.get("spec", {}).get("containers", [])}
        if image is not None and image not in images:
            continue
        events = pod_events(cluster, namespace, str(pod["metadata"]["name"]))
        found = classify(service, pod, events, claims, now)
        if found is not None:
            return _with_logs(cluster, namespace, found, pod)
    return None


def describe_deployment(deployment: kube.Object) -> str:
    """A Deployment's rollout in words: ``complete, 1/1 ready`` or ``in progress, 0/1 ready``."""
    spec = deployment.get("spec", {})
    containers = spec.get("template", {}).get("spec", {}).get("containers")
    image = str(containers[0].get("image", "")) if containers else ""
    serving = deployment.get("status", {}).get("readyReplicas", 0)
    ready = f"{serving}/{spec.get('replicas', 1)} ready"
    done = deployment_ready(deployment, image)
    return f"complete, {ready}" if done else f"in progress, {ready}"


def deployment_ready(deployment: kube.Object, image: str) -> bool:
    """Whether the Deployment's rollout to ``image`` is complete and available.

    A Deployment scaled to none serves nobody: never ready (0 of 0 counted as ready let
    a revert cut short by SIGTERM, which scales the backend to 0 first, be verified).
    """
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    images = [
        c.get("image") for c in spec.get("template", {}).get("spec", {}).get("containers", [])
    ]
    wanted = int(spec.get("replicas", 1))
    return (
        wanted > 0
        and image in images
        and int(status.get("observedGeneration", 0))
        >= int(deployment["metadata"].get("generation", 0))
        and int(status.get("updatedReplicas", 0)) == wanted
        and int(status.get("availableReplicas", 0)) >= wanted
        and int(status.get("replicas", 0)) == wanted
    )


class Verdict(enum.StrEnum):
    """What ended a rollout wait."""

    READY = "ready"
    FAILED = "failed"
    TIMED_OUT = "timed-out"


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    verdict: Verdict
    seconds: float
    diagnosis: Diagnosis | None = None
    #: Deployments not ready when the wait ended
    waiting: tuple[str, ...] = ()
    #: why, when no pod explains it (Helm could not apply the release)
    detail: str = ""

    @property
    def summary(self) -> str:
        if self.diagnosis is not None:
            return self.diagnosis.summary
        if self.detail:
            return self.detail
        if self.verdict is Verdict.TIMED_OUT:
            return f"{', '.join(self.waiting)} not ready after {self.seconds:.0f}s"
        return f"ready in {self.seconds:.1f}s"

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "seconds": round(self.seconds, 3),
            "ended_by": self.diagnosis.reason.value if self.diagnosis else self.verdict.value,
            "waiting": list(self.waiting),
        }


def join_threads(threads: list[threading.Thread], seconds: float = 5.0) -> None:
    """Wait (bounded) for watch threads told to stop: none is left alive at exit."""
    deadline = time.monotonic() + seconds
    for thread in threads:
        if thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))


def judge(
    cluster: kube.Connection, namespace: str, expected: Mapping[str, str]
) -> tuple[list[str], Diagnosis | None]:
    """The Deployments of ``expected`` (name -> image) not ready yet, and the first
    certain failure among their new pods."""
    waiting: list[str] = []
    for service, image in expected.items():
        found = cluster.get("apps/v1", "Deployment", namespace, service)
        if found is not None and deployment_ready(found, image):
            continue
        waiting.append(service)
        if found is not None and int(found.get("spec", {}).get("replicas", 1)) == 0:
            # Certain, and no pod will ever say so: left at 0 by a revert that a
            # signal cut short, or by hand. The remedy (a rollback) sets the replicas.
            return waiting, Diagnosis(
                service,
                FailureReason.SCALED_TO_ZERO,
                "the Deployment is scaled to 0 replicas: no pod serves",
            )
        diagnosis = inspect(cluster, namespace, service, image=image)
        if diagnosis is not None:
            return waiting, diagnosis
    return waiting, None


async def await_rollout(
    cluster: kube.Connection,
    namespace: str,
    expected: Mapping[str, str],
    *,
    timeout: float,
    on_error: Callable[[Exception], None] = lambda _exc: None,
    tick_seconds: float = 5.0,
) -> RolloutResult:
    """Wait until every Deployment of ``expected`` runs its image Ready, or one of its
    pods is certain to fail, or ``timeout`` passes — whichever comes first.

    The pods and Deployments are watched (the API's watch), and every change is judged
    at once; a slow tick covers what only time reveals (a pod unschedulable for long, a
    volume that never attaches).
    """
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    stop = threading.Event()

    def poke() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(changed.set)

    selector = f"{NAME_LABEL} in ({','.join(sorted(expected))})"
    watchers = [
        threading.Thread(
            target=cluster.watch,
            args=(kind, namespace, selector),
            kwargs={"on_change": poke, "stop": stop},
            name=f"rollout-watch-{kind.lower()}",
            daemon=True,
        )
        for kind in ("Pod", "Deployment")
    ]
    for watcher in watchers:
        watcher.start()
    started = time.monotonic()
    try:
        while True:
            changed.clear()
            try:
                waiting, diagnosis = await asyncio.to_thread(judge, cluster, namespace, expected)
            except errors.LuminaError as exc:  # an API blink: judged again on the next change
                on_error(exc)
                waiting, diagnosis = list(expected), None
            elapsed = time.monotonic() - started
            if diagnosis is not None:
                return RolloutResult(Verdict.FAILED, elapsed, diagnosis, tuple(waiting))
            if not waiting:
                return RolloutResult(Verdict.READY, elapsed)
            if elapsed >= timeout:
                return RolloutResult(Verdict.TIMED_OUT, elapsed, None, tuple(waiting))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(tick_seconds, timeout - elapsed))
            await asyncio.sleep(0.1)  # one judgement for a burst of events
    finally:
        stop.set()
        # Joined, not left behind: a thread alive at exit can abort the interpreter.
        await asyncio.shield(asyncio.to_thread(join_threads, watchers))
