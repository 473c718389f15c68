"""Trial starts: a service's new image started once beside the running release, on a
copy of its data, before an upgrade is allowed to stop the pod that serves.

Who calls it: the cycle's upgrade action, for each service whose plugin declares a
:class:`services.TrialStart` and whose pod the upgrade restarts, after the pre-upgrade
backup and before Helm applies anything. The pod is built (pure, :func:`trial_pod`)
from the *rendered* Deployment — the new image with the new config, security context
and resources — with the live data volume mounted read-only and the plugin's prepare
step (or the service's own start) copying the backup into a scratch volume; the
ConfigMaps it reads are copied under trial names, since the release's own still hold
the old config. It carries none of the service's labels, so no Service routes to it,
and Kubernetes ends it at its deadline even if the daemon is gone. :func:`judge`
(pure) reads its state; :func:`run` creates it, watches it until a verdict, and
deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import enum
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from reconciler import errors, services
from reconciler.cluster import kube, rollout

TRIAL_LABEL = "lumina.dev/trial"
MANAGED_BY = {"app.kubernetes.io/managed-by": "lumina-reconciler"}
SCRATCH_VOLUME = "lumina-trial-scratch"
PREPARE_CONTAINER = "prepare-trial"
#: The scratch volume holds a copy of the database; bounded like the pod's /tmp.
SCRATCH_LIMIT = "1Gi"
#: The least CPU limit a trial's containers get, in millicores (see _with_cpu_to_start).
TRIAL_CPU_MILLICORES = 1000


class TrialVerdict(enum.StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    #: the trial could not run (no room for a second pod): the upgrade goes ahead
    SKIPPED = "skipped"


@dataclasses.dataclass(frozen=True)
class TrialResult:
    service: str
    verdict: TrialVerdict
    seconds: float
    diagnosis: rollout.Diagnosis | None = None
    detail: str = ""

    @property
    def summary(self) -> str:
        if self.diagnosis is not None:
            return self.diagnosis.summary
        return self.detail or f"ready in {self.seconds:.1f}s"


class TrialStartFailedError(errors.PermanentError):
    """The new image did not start on a copy of the data: the upgrade was refused."""

    outcome = "trial-failed"
    of_inputs = True

    def __init__(self, result: TrialResult) -> None:
        explained = result.diagnosis.explain() if result.diagnosis else result.summary
        super().__init__(
            f"upgrade refused: the new {result.service} image did not start on a copy of "
            f"its data ({result.summary}); the running pod was not touched\n{explained}",
            hint=f"fix the change and save again; `lumina-reconcile diagnose "
            f"{result.service}` shows the running pod",
        )
        self.result = result


def trial_name(deployment: str) -> str:
    return f"{deployment}-trial"


def _config_maps_read(spec: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        for source in container.get("envFrom") or []:
            if name := (source.get("configMapRef") or {}).get("name"):
                names.add(str(name))
        for variable in container.get("env") or []:
            ref = (variable.get("valueFrom") or {}).get("configMapKeyRef") or {}
            if name := ref.get("name"):
                names.add(str(name))
    for volume in spec.get("volumes") or []:
        if name := (volume.get("configMap") or {}).get("name"):
            names.add(str(name))
    return names


def trial_config_maps(
    rendered: Iterable[Mapping[str, Any]], template_spec: Mapping[str, Any], deployment: str
) -> dict[str, kube.Object]:
    """Copies, under trial names, of the rendered ConfigMaps the pod reads: old name ->
    the copy. A ConfigMap the chart does not render is read as it is in the cluster."""
    wanted = _config_maps_read(template_spec)
    copies: dict[str, kube.Object] = {}
    for obj in rendered:
        name = str(obj.get("metadata", {}).get("name", ""))
        if obj.get("kind") != "ConfigMap" or name not in wanted:
            continue
        copies[name] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{name}-{trial_name(deployment)}",
                "namespace": obj.get("metadata", {}).get("namespace"),
                "labels": {**MANAGED_BY, TRIAL_LABEL: deployment},
            },
            "data": dict(obj.get("data") or {}),
        }
    return copies


def _renamed_config_maps(container: dict[str, Any], renamed: Mapping[str, str]) -> None:
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef") or {}
        if ref.get("name") in renamed:
            ref["name"] = renamed[ref["name"]]
    for variable in container.get("env") or []:
        ref = (variable.get("valueFrom") or {}).get("configMapKeyRef") or {}
        if ref.get("name") in renamed:
            ref["name"] = renamed[ref["name"]]


def _with_env(container: dict[str, Any], env: Mapping[str, str]) -> None:
    kept = [v for v in container.get("env") or [] if v.get("name") not in env]
    container["env"] = [*kept, *({"name": k, "value": v} for k, v in env.items())]


def _millicores(quantity: object) -> float | None:
    text = str(quantity).strip()
    try:
        return float(text[:-1]) if text.endswith("m") else float(text) * 1000
    except ValueError:
        return None


def _with_cpu_to_start(container: dict[str, Any]) -> None:
    """Raise a CPU limit below one core to one core; requests and memory stay as they are.

    The trial is judged on whether the new image starts, not on how fast: at the pod's
    own limit (half a core for the backend) its start takes twice as long, and the
    upgrade waits for it. The request (what scheduling reserves) is unchanged, and so
    is the memory limit, since running out of memory is a failure the trial must show.
    """
    limits = (container.get("resources") or {}).get("limits") or {}
    current = _millicores(limits["cpu"]) if "cpu" in limits else None
    if current is not None and current < TRIAL_CPU_MILLICORES:
        limits["cpu"] = f"{TRIAL_CPU_MILLICORES}m"


def trial_pod(
    deployment: Mapping[str, Any],
    trial: services.TrialStart,
    *,
    service: str,
    backup: str,
    node: str | None,
    config_maps: Mapping[str, str],
) -> kube.Object:
    """The trial pod of a rendered ``deployment`` (pure).

    ``node``: where the serving pod runs (a ReadWriteOnce volume can be mounted by two
    pods on one node only); ``config_maps``: old ConfigMap name -> its trial copy.
    """
    name = str(deployment["metadata"]["name"])
    template = copy.deepcopy(deployment["spec"]["template"])
    spec: dict[str, Any] = template["spec"]
    containers: list[dict[str, Any]] = spec["containers"]
    main = next((c for c in containers if c.get("name") == service), containers[0])
    mounts = main.setdefault("volumeMounts", [])
    data_mounts = [m for m in mounts if m.get("name") == trial.data_volume]
    if not data_mounts:
        raise errors.PluginError(
            service,
            f"trial_start.data_volume {trial.data_volume!r} is not mounted by the "
            f"{main.get('name')} container of Deployment {name}",
            hint="name one of the volumes of the chart's pod template",
        )
    for mount in data_mounts:
        mount["readOnly"] = True
    for volume in spec.get("volumes") or []:
        if volume.get("name") == trial.data_volume and "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["readOnly"] = True
    scratch = {"name": SCRATCH_VOLUME, "mountPath": trial.scratch_path}
    spec.setdefault("volumes", []).append(
        {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": SCRATCH_LIMIT}}
    )
    for container in containers:
        _renamed_config_maps(container, config_maps)
    init: list[dict[str, Any]] = []
    if trial.prepare:
        prepare = copy.deepcopy(main)
        for key in ("ports", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle"):
            prepare.pop(key, None)
        prepare["name"] = PREPARE_CONTAINER
        prepare["command"] = list(trial.prepare)
        prepare.pop("args", None)
        prepare["volumeMounts"] = [*prepare.get("volumeMounts", []), scratch]
        _with_env(prepare, {"LUMINA_TRIAL_BACKUP": backup})
        _with_cpu_to_start(prepare)
        init.append(prepare)
        main_env = dict(trial.env)
    else:
        main_env = {"LUMINA_TRIAL_BACKUP": backup, **trial.env}
    main["volumeMounts"] = [*mounts, scratch]
    _with_env(main, main_env)
    # Readiness alone, asked every second: the upgrade waits on its first yes, and
    # nobody else does. A startup probe would put a second probe period before it, and
    # liveness has nothing to guard in a pod that ends at its deadline anyway.
    main.pop("startupProbe", None)
    main.pop("livenessProbe", None)
    if isinstance(main.get("readinessProbe"), dict):
        main["readinessProbe"]["periodSeconds"] = 1
    _with_cpu_to_start(main)
    # Only the service's container and its prepare step: sidecars are not on trial.
    spec["containers"] = [main]
    if init:
        spec["initContainers"] = [*spec.get("initContainers", []), *init]
    spec["restartPolicy"] = "Never"
    spec["activeDeadlineSeconds"] = int(trial.timeout_seconds) + 30
    spec.pop("nodeName", None)
    if node:
        spec["nodeSelector"] = {**spec.get("nodeSelector", {}), "kubernetes.io/hostname": node}
    annotations = template.get("metadata", {}).get("annotations") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": trial_name(name),
            "namespace": deployment["metadata"].get("namespace"),
            "labels": {**MANAGED_BY, TRIAL_LABEL: name},
            "annotations": dict(annotations),
        },
        "spec": spec,
    }


def _failed(
    service: str,
    reason: rollout.FailureReason,
    summary: str,
    pod: str,
    evidence: tuple[str, ...],
    *,
    seconds: float = 0.0,
) -> TrialResult:
    return TrialResult(
        service,
        TrialVerdict.FAILED,
        seconds,
        rollout.Diagnosis(service, reason, summary, pod, (), evidence),
    )


def _terminated(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return (status.get("state") or {}).get("terminated")


def judge(
    service: str, pod: Mapping[str, Any], events: Iterable[kube.Object], now: datetime.datetime
) -> TrialResult | None:
    """The trial's verdict from its pod, or None while it may still become ready (pure).

    ``seconds`` is left 0: the caller knows how long it waited.
    """
    name = str(pod.get("metadata", {}).get("name", ""))
    status = pod.get("status", {})
    events = list(events)
    evidence = rollout.event_lines(events)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return TrialResult(service, TrialVerdict.PASSED, 0.0)
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return TrialResult(
                service,
                TrialVerdict.SKIPPED,
                0.0,
                detail=f"no room for a trial pod: {condition.get('message', '')}".strip(),
            )
    for kind, statuses in (
        ("prepare step", status.get("initContainerStatuses") or []),
        ("container", status.get("containerStatuses") or []),
    ):
        for container in statuses:
            ended = _terminated(container)
            if ended is None or (kind == "prepare step" and ended.get("exitCode") == 0):
                continue
            reason = f"{ended.get('reason', '')}, " if ended.get("reason") else ""
            return _failed(
                service,
                rollout.FailureReason.CRASH_LOOP,
                f"{kind} {container.get('name')} of the trial exited "
                f"({reason}exit code {ended.get('exitCode')})",
                name,
                evidence,
            )
    if status.get("phase") == "Failed":
        return _failed(
            service,
            rollout.FailureReason.NOT_READY,
            f"the trial pod failed: {status.get('reason', '')} {status.get('message', '')}",
            name,
            evidence,
        )
    found = rollout.classify(service, dict(pod), events, {}, now)
    if found is not None and found.reason in (
        rollout.FailureReason.CONFIG,
        rollout.FailureReason.IMAGE_MISSING,
    ):
        return TrialResult(service, TrialVerdict.FAILED, 0.0, found)
    return None


def _failed_container(pod: Mapping[str, Any]) -> str:
    status = pod.get("status", {})
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        ended = _terminated(container)
        if ended is not None and ended.get("exitCode"):
            return str(container.get("name"))
    containers = pod.get("spec", {}).get("containers") or [{}]
    return str(containers[0].get("name", ""))


def _with_logs(
    cluster: kube.Connection, namespace: str, result: TrialResult, pod: kube.Object
) -> TrialResult:
    if result.diagnosis is None:
        return result
    text = cluster.pod_log(
        namespace, result.diagnosis.pod, _failed_container(pod), previous=False, lines=15
    )
    logs = tuple(line for line in text.splitlines() if line.strip())[-15:]
    return dataclasses.replace(result, diagnosis=dataclasses.replace(result.diagnosis, logs=logs))


def _look(cluster: kube.Connection, namespace: str, service: str, name: str) -> TrialResult | None:
    pod = cluster.get("v1", "Pod", namespace, name)
    if pod is None:
        return None
    now = datetime.datetime.now(datetime.UTC)
    # Events only tell failures apart: a passed trial is known without reading them.
    found = judge(service, pod, (), now)
    if found is None or found.verdict is not TrialVerdict.PASSED:
        found = judge(service, pod, rollout.pod_events(cluster, namespace, name), now)
    if found is not None and found.verdict is TrialVerdict.FAILED:
        return _with_logs(cluster, namespace, found, pod)
    return found


def _timed_out(
    cluster: kube.Connection, namespace: str, service: str, name: str, waited: float
) -> TrialResult:
    return _failed(
        service,
        rollout.FailureReason.NOT_READY,
        f"the trial did not become ready within {waited:.0f}s",
        name,
        rollout.event_lines(rollout.pod_events(cluster, namespace, name)),
        seconds=waited,
    )


def _remove(cluster: kube.Connection, namespace: str, pod: str, config_maps: Iterable[str]) -> None:
    # At once: a trial serves nobody, and its copy of the data is thrown away anyway.
    cluster.delete("v1", "Pod", namespace, pod, grace_period_seconds=0)
    for name in config_maps:
        cluster.delete("v1", "ConfigMap", namespace, name)


async def _gone(cluster: kube.Connection, namespace: str, name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(cluster.get, "v1", "Pod", namespace, name) is not None:
        if time.monotonic() > deadline:
            raise errors.TemporaryError(
                f"a previous trial pod {name} is still being deleted",
                hint="it is retried; `kubectl delete pod` it if it stays",
            )
        await asyncio.sleep(0.3)


def serving_node(cluster: kube.Connection, namespace: str, pod: str) -> str | None:
    """The ``kubernetes.io/hostname`` of the node ``pod`` runs on, if it is known."""
    found = cluster.get("v1", "Pod", namespace, pod)
    node_name = (found or {}).get("spec", {}).get("nodeName")
    if not node_name:
        return None
    node = cluster.get("v1", "Node", None, str(node_name))
    labels = (node or {}).get("metadata", {}).get("labels") or {}
    return str(labels.get("kubernetes.io/hostname", node_name))


async def run(
    cluster: kube.Connection,
    namespace: str,
    service: str,
    pod: kube.Object,
    config_maps: Iterable[kube.Object],
    *,
    timeout: float,
) -> TrialResult:
    """Start the trial pod, wait for its verdict (watched, judged on every change), and
    delete it and its ConfigMaps whatever happened — even when the wait is cancelled."""
    name = str(pod["metadata"]["name"])
    maps = list(config_maps)
    map_names = [str(m["metadata"]["name"]) for m in maps]
    # A leftover of a daemon that was killed mid-trial would be mistaken for this one.
    await asyncio.to_thread(_remove, cluster, namespace, name, ())
    await _gone(cluster, namespace, name, 60.0)
    loop = asyncio.get_running_loop()
    changed = asyncio.Event()
    stop = threading.Event()

    def poke() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(changed.set)

    watcher = threading.Thread(
        target=cluster.watch,
        args=("Pod", namespace, f"{TRIAL_LABEL}={pod['metadata']['labels'][TRIAL_LABEL]}"),
        kwargs={"on_change": poke, "stop": stop},
        name="trial-watch",
        daemon=True,
    )
    started = time.monotonic()
    try:
        try:
            for config_map in maps:
                await asyncio.to_thread(cluster.apply, config_map)
            await asyncio.to_thread(cluster.apply, pod)
        except kube.ApiRefusedError as exc:
            # A quota, a LimitRange (the trial asks for a core) or RBAC the trial pod
            # does not fit: like no room for it, the upgrade goes ahead untried, saying why.
            return TrialResult(
                service,
                TrialVerdict.SKIPPED,
                time.monotonic() - started,
                detail=f"the cluster refused a trial pod: {exc.message}",
            )
        watcher.start()
        while True:
            changed.clear()
            found = await asyncio.to_thread(_look, cluster, namespace, service, name)
            waited = time.monotonic() - started
            if found is not None:
                return dataclasses.replace(found, seconds=waited)
            if waited >= timeout:
                return await asyncio.to_thread(
                    _timed_out, cluster, namespace, service, name, waited
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(2.0, timeout - waited))
    finally:
        stop.set()
        if watcher.is_alive():
            await asyncio.shield(asyncio.to_thread(rollout.join_threads, [watcher]))
        # Shielded: a cancelled cycle (SIGTERM) still takes its trial pod away.
        await asyncio.shield(asyncio.to_thread(_remove, cluster, namespace, name, map_names))


# --- one-off pods that run to completion (a database revert after a failed upgrade) --

REVERT_LABEL = "lumina.dev/revert"


def revert_pod(
    deployment: Mapping[str, Any], *, service: str, image: str, command: list[str]
) -> kube.Object:
    """A pod of the live ``deployment``'s template running ``command`` once in
    ``image`` (the previous one), on the service's own volumes, read-write (pure)."""
    name = str(deployment["metadata"]["name"])
    template = copy.deepcopy(deployment["spec"]["template"])
    spec: dict[str, Any] = template["spec"]
    containers: list[dict[str, Any]] = spec["containers"]
    main = next((c for c in containers if c.get("name") == service), containers[0])
    for key in ("ports", "startupProbe", "livenessProbe", "readinessProbe", "lifecycle", "args"):
        main.pop(key, None)
    main["image"] = image
    main["command"] = command
    spec["containers"] = [main]
    spec["restartPolicy"] = "Never"
    spec["activeDeadlineSeconds"] = 600
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-revert",
            "namespace": deployment["metadata"].get("namespace"),
            "labels": {**MANAGED_BY, REVERT_LABEL: name},
        },
        "spec": spec,
    }


async def scale_to_none(
    cluster: kube.Connection, namespace: str, deployment: str, timeout: float
) -> None:
    """Scale ``deployment`` to no pods and wait until its last pod is gone; the
    rollback that follows sets the chart's replicas again."""
    await asyncio.to_thread(
        cluster.apply,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": deployment, "namespace": namespace},
            "spec": {"replicas": 0},
        },
    )
    deadline = time.monotonic() + timeout
    selector = f"{rollout.NAME_LABEL}={deployment}"
    while await asyncio.to_thread(cluster.list, "v1", "Pod", namespace, label_selector=selector):
        if time.monotonic() > deadline:
            raise errors.TemporaryError(
                f"the pods of {deployment} did not stop within {timeout:.0f}s",
                hint="see `kubectl get pods`; the rollback goes on without the revert",
            )
        await asyncio.sleep(0.3)


async def scale_back(
    cluster: kube.Connection, namespace: str, manifests: list[kube.Object]
) -> list[str]:
    """Give each Deployment of ``manifests`` that is at no pods the replicas its manifest
    asks for; the names of those scaled. A revert scales a service to none with our own
    field manager: Helm's rollback does not always take that field back (a killed
    remedy left the backend at 0 after its rollback), so the remedy does."""
    scaled: list[str] = []
    for obj in manifests:
        if obj.get("kind") != "Deployment":
            continue
        name = str(obj["metadata"]["name"])
        wanted = int((obj.get("spec") or {}).get("replicas", 1))
        live = await asyncio.to_thread(cluster.get, "apps/v1", "Deployment", namespace, name)
        if live is None or wanted < 1 or int((live.get("spec") or {}).get("replicas", 1)) > 0:
            continue
        await asyncio.to_thread(
            cluster.apply,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"replicas": wanted},
            },
        )
        scaled.append(name)
    return scaled


async def run_to_completion(
    cluster: kube.Connection, namespace: str, pod: kube.Object, *, timeout: float
) -> tuple[bool, str]:
    """Run a one-off pod until it ends: (succeeded, its log). Deleted afterwards."""
    name = str(pod["metadata"]["name"])
    container = str(pod["spec"]["containers"][0]["name"])
    await asyncio.to_thread(_remove, cluster, namespace, name, ())
    await _gone(cluster, namespace, name, 60.0)
    deadline = time.monotonic() + timeout
    try:
        await asyncio.to_thread(cluster.apply, pod)
        while True:
            found = await asyncio.to_thread(cluster.get, "v1", "Pod", namespace, name)
            phase = (found or {}).get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed"):
                text = await asyncio.to_thread(
                    cluster.pod_log, namespace, name, container, previous=False, lines=50
                )
                return phase == "Succeeded", text
            if time.monotonic() > deadline:
                return False, f"{name} did not finish within {timeout:.0f}s (phase {phase})"
            await asyncio.sleep(0.5)
    finally:
        await asyncio.shield(asyncio.to_thread(_remove, cluster, namespace, name, ()))
