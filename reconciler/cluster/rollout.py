"""Watching a rollout and explaining a failure in words, with evidence.

Who calls it: :mod:`reconciler.cycle.reconciling` (while Helm waits, to fail fast) and the
``diagnose`` command. Classification is pure (:func:`classify`) over API objects; the
watcher polls through :class:`reconciler.cluster.kube.Kube`. A failure is reported as soon as it
is certain — CrashLoopBackOff, an image the node does not have, a pod that cannot be
scheduled, a volume attached elsewhere — instead of sitting out Helm's whole timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


def _event_lines(events: Iterable[kube.Object]) -> tuple[str, ...]:
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
    evidence = _event_lines(events)
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


def _pods(cluster: kube.Kube, namespace: str, service: str) -> list[kube.Object]:
    return cluster.list("v1", "Pod", namespace, label_selector=f"{NAME_LABEL}={service}")


def _pod_events(cluster: kube.Kube, namespace: str, pod: str) -> list[kube.Object]:
    return cluster.list(
        "v1",
        "Event",
        namespace,
        field_selector=f"involvedObject.name={pod},involvedObject.kind=Pod",
    )


def _with_logs(cluster: kube.Kube, namespace: str, found: Diagnosis, pod: kube.Object) -> Diagnosis:
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
    cluster: kube.Kube, namespace: str, service: str, *, image: str | None = None
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
        events = _pod_events(cluster, namespace, str(pod["metadata"]["name"]))
        found = classify(service, pod, events, claims, now)
        if found is not None:
            return _with_logs(cluster, namespace, found, pod)
    return None


def deployment_ready(deployment: kube.Object, image: str) -> bool:
    """Whether the Deployment's rollout to ``image`` is complete and available."""
    spec = deployment.get("spec", {})
    status = deployment.get("status", {})
    images = [
        c.get("image") for c in spec.get("template", {}).get("spec", {}).get("containers", [])
    ]
    wanted = int(spec.get("replicas", 1))
    return (
        image in images
        and int(status.get("observedGeneration", 0))
        >= int(deployment["metadata"].get("generation", 0))
        and int(status.get("updatedReplicas", 0)) == wanted
        and int(status.get("availableReplicas", 0)) >= wanted
        and int(status.get("replicas", 0)) == wanted
    )


async def watch(
    cluster: kube.Kube,
    namespace: str,
    expected: Mapping[str, str],
    *,
    poll_seconds: float = 1.0,
    on_error: Callable[[Exception], None] = lambda _exc: None,
) -> Diagnosis:
    """Return the first failure among the pods of ``expected`` (service -> image).

    Runs until cancelled; the caller cancels it once Helm reports success.
    """
    while True:
        for service, image in expected.items():
            try:
                found = await asyncio.to_thread(inspect, cluster, namespace, service, image=image)
            except Exception as exc:  # a blip of the API must not end the watch
                on_error(exc)
                continue
            if found is not None:
                return found
        await asyncio.sleep(poll_seconds)
