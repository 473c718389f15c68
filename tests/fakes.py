"""In-memory stand-ins for the cycle's ports (:mod:`reconciler.cycle.ports`), recording
every call.

Used by unit tests that run the cycle or an action on real settings, plugins, git
repository and state directory but with no cluster, no Helm and no Docker:

- :class:`FakeKube` keeps objects in a dict and refuses, as the API server does, an
  object whose namespace does not exist. Its ``watch`` blocks in the calling thread
  until ``stop`` is set and calls ``on_change`` after every write, as the real one does;
  :attr:`FakeKube.watching` counts the watches still running. A Pod applied is handed
  to :attr:`FakeKube.kubelet`, which says what its status becomes.
- :class:`FakeReleases` renders nothing; an apply or a rollback makes a revision and,
  like Helm plus the Deployment controller, sets the release's Deployments to its
  images — ready, unless :attr:`FakeReleases.failing` names the image.
- :class:`FakeImages` holds a set of image references: built ones are added, delivered
  ones recorded.
- :class:`FakeClock` stands still unless moved; :class:`FakeNotifier` keeps what it is
  told. The state store is the real one (:class:`reconciler.cycle.state.Directory`) on
  the test's directory: ``state.json`` is what the tests read, as a user would.

All record what they were asked, in order, in one shared :class:`Journal`, so a test
can assert the order of writes.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import threading
from collections.abc import Callable, Sequence
from typing import Any

from reconciler import services, settings
from reconciler.building import builds
from reconciler.cluster import kube
from reconciler.cycle import metrics, outcomes, state, toolboxes
from reconciler.inputs import contexts, worktree_reading
from reconciler.releasing import drifting, helm

Object = dict[str, Any]


@dataclasses.dataclass
class Journal:
    """Every call, in order, as ``"verb Kind namespace/name"``."""

    calls: list[str] = dataclasses.field(default_factory=list)

    def writes(self) -> list[str]:
        return [
            call
            for call in self.calls
            if call.split()[0] in ("apply", "delete")
            or call.startswith(("helm upgrade", "helm rollback"))
        ]

    def helm(self) -> list[str]:
        return [call for call in self.calls if call.startswith("helm ")]


def _key(kind: str, namespace: str | None, name: str) -> tuple[str, str, str]:
    return kind, namespace or "", name


def _selected(body: Object, selector: str) -> bool:
    """Whether ``body``'s labels match ``selector`` (``k=v`` and ``k in (a,b)`` terms)."""
    labels = body.get("metadata", {}).get("labels") or {}
    terms: list[str] = []
    depth = 0
    current = ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    for term in (t.strip() for t in terms if t.strip()):
        if " in (" in term:
            key, _, rest = term.partition(" in (")
            if labels.get(key.strip()) not in {v.strip() for v in rest.rstrip(")").split(",")}:
                return False
        else:
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def pending(pod: Object) -> Object:
    """The default kubelet: a Pod that never gets scheduled."""
    return pod


class FakeKube:
    """:class:`reconciler.cluster.kube.Connection` in memory."""

    def __init__(self, journal: Journal, objects: list[Object] | None = None) -> None:
        self.journal = journal
        self.objects: dict[tuple[str, str, str], Object] = {}
        #: what a Pod applied becomes (its status set), as a kubelet would make it
        self.kubelet: Callable[[Object], Object] = pending
        #: pod name -> its log
        self.logs: dict[str, str] = {}
        #: what a command run in a pod answers (by its argv)
        self.commands: Callable[[Sequence[str]], kube.ExecResult] = lambda argv: kube.ExecResult(
            0, "", ""
        )
        #: watches running now, in the threads that called ``watch``
        self.watching = 0
        self._changed = threading.Condition()
        self._generation = 0
        for body in objects or []:
            self._store(body)

    def _store(self, body: Object) -> None:
        metadata = body["metadata"]
        with self._changed:
            self.objects[_key(body["kind"], metadata.get("namespace"), metadata["name"])] = (
                copy.deepcopy(body)
            )
            self._generation += 1
            self._changed.notify_all()

    def put(self, body: Object) -> None:
        """Set an object as a controller would (no call recorded)."""
        self._store(body)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Object | None:
        self.journal.calls.append(f"get {kind} {namespace or ''}/{name}")
        found = self.objects.get(_key(kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        *,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Object]:
        self.journal.calls.append(f"list {kind} {namespace or '*'}")
        return [
            copy.deepcopy(body)
            for (found_kind, found_namespace, _), body in list(self.objects.items())
            if found_kind == kind
            and (namespace is None or found_namespace == namespace)
            and _selected(body, label_selector)
        ]

    def apply(self, body: Object) -> Object:
        metadata = body["metadata"]
        namespace = metadata.get("namespace")
        self.journal.calls.append(f"apply {body['kind']} {namespace or ''}/{metadata['name']}")
        if namespace and _key("Namespace", None, namespace) not in self.objects:
            # What the API server answers: the first-install bug of issue 21.
            raise kube.ApiRefusedError(
                f"applying {body['kind']} {metadata['name']}: 404 Not Found: "
                f'namespaces "{namespace}" not found'
            )
        merged = copy.deepcopy(self.objects.get(_key(body["kind"], namespace, metadata["name"])))
        if merged is None:
            merged = copy.deepcopy(body)
        else:
            merged["metadata"].setdefault("labels", {}).update(metadata.get("labels") or {})
            for field, value in body.items():
                if field == "spec" and isinstance(value, dict):
                    # Server-side apply merges the fields it is given (replicas only).
                    merged.setdefault("spec", {}).update(copy.deepcopy(value))
                elif field != "metadata":
                    merged[field] = copy.deepcopy(value)
        if body["kind"] == "Pod":
            merged = self.kubelet(merged)
        self._store(merged)
        if body["kind"] == "Deployment" and merged.get("spec", {}).get("replicas") == 0:
            # What its ReplicaSet does: no pod is left.
            self.remove_pods(namespace or "", metadata["name"])
        return copy.deepcopy(merged)

    def remove_pods(self, namespace: str, service: str) -> None:
        """The pods of ``service`` go, as when its ReplicaSet is replaced or scaled down."""
        with self._changed:
            for key, body in list(self.objects.items()):
                if (
                    key[0] == "Pod"
                    and key[1] == namespace
                    and _selected(body, f"app.kubernetes.io/name={service}")
                ):
                    del self.objects[key]
            self._generation += 1
            self._changed.notify_all()

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str,
        name: str,
        *,
        grace_period_seconds: int | None = None,
    ) -> None:
        self.journal.calls.append(f"delete {kind} {namespace}/{name}")
        with self._changed:
            if self.objects.pop(_key(kind, namespace, name), None) is not None:
                self._generation += 1
                self._changed.notify_all()

    def watch(
        self,
        kind: str,
        namespace: str,
        label_selector: str,
        *,
        on_change: Callable[[], None],
        stop: threading.Event,
        window_seconds: int = 10,
    ) -> None:
        """Blocks until ``stop`` is set, calling ``on_change`` at the start and after
        every write, as the real watch does in its thread."""
        self.journal.calls.append(f"watch {kind} {namespace}")
        with self._changed:
            self.watching += 1
        try:
            seen = -1
            while not stop.is_set():
                with self._changed:
                    if self._generation == seen:
                        # Short waits: ``stop`` is a plain Event, it does not notify us.
                        self._changed.wait(0.05)
                    current = self._generation
                if current != seen:
                    seen = current
                    on_change()
        finally:
            with self._changed:
                self.watching -= 1

    def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int | None
    ) -> str:
        return self.logs.get(pod, "")

    def exec(
        self, namespace: str, pod: str, container: str, argv: Sequence[str], *, timeout: float
    ) -> kube.ExecResult:
        self.journal.calls.append(f"exec {namespace}/{pod} {' '.join(argv)}")
        return self.commands(argv)


def deployment(name: str, namespace: str, image: str, *, ready: bool) -> Object:
    """A Deployment of one pod running ``image``, its rollout done or not."""
    status = (
        {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}
        if ready
        else {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "generation": 1},
        "spec": {
            "replicas": 1,
            "template": {"spec": {"containers": [{"name": name, "image": image}]}},
        },
        "status": status,
    }


def crashing_pod(name: str, namespace: str, service: str, image: str) -> Object:
    """A pod of ``service`` whose container keeps crashing: a certain failure."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": service},
        },
        "spec": {"containers": [{"name": service, "image": image}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": service,
                    "image": image,
                    "ready": False,
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
                }
            ],
        },
    }


class FakeReleases:
    """A Helm release whose applies and rollbacks set its Deployments' images."""

    def __init__(self, journal: Journal, cluster: FakeKube, namespace: str) -> None:
        self.journal = journal
        self.cluster = cluster
        self.namespace = namespace
        self.revision = 0
        self.values: list[dict[str, Any]] = []
        #: every revision, the latest last
        self.history: list[helm.ReleaseState] = []
        #: image -> what its pods do instead of becoming ready: "crash" or "hang"
        self.failing: dict[str, str] = {}
        #: what ``render`` answers (the chart's objects)
        self.rendered: list[Object] = []
        #: what ``deployed_manifests`` answers; None: the latest revision's Deployments
        self.deployed: list[Object] | None = None

    def _roll_out(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            image = (value or {}).get("image") if isinstance(value, dict) else None
            if not image:
                continue
            reference = f"{image['repository']}:{image['tag']}"
            failing = self.failing.get(reference, "")
            self.cluster.put(deployment(key, self.namespace, reference, ready=not failing))
            self.cluster.remove_pods(self.namespace, key)
            if failing == "crash":
                self.cluster.put(crashing_pod(f"{key}-new", self.namespace, key, reference))

    def _revise(self, values: dict[str, Any], status: str = "deployed") -> int:
        self.revision += 1
        self.history.append(helm.ReleaseState(self.revision, status, copy.deepcopy(values)))
        self._roll_out(values)
        return self.revision

    async def current(self) -> helm.ReleaseState | None:
        return self.history[-1] if self.history else None

    async def recover(self) -> str | None:
        """A ``pending-*`` latest revision is rolled back, as the Helm adapter does."""
        self.journal.calls.append("helm recover")
        latest = self.history[-1] if self.history else None
        if latest is None or latest.status not in helm.PENDING_NAMES:
            return None
        deployed = [r for r in self.history if r.status == "deployed"]
        self._revise(deployed[-1].values if deployed else {})
        return f"rolled back {latest.status} revision {latest.revision}"

    async def render(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        self.journal.calls.append("helm template")
        return copy.deepcopy(self.rendered)

    async def deployed_manifests(self) -> list[dict[str, Any]]:
        if self.deployed is not None:
            return copy.deepcopy(self.deployed)
        latest = self.history[-1].values if self.history else {}
        manifests = []
        for key, value in latest.items():
            image = value.get("image") if isinstance(value, dict) else None
            if image:
                reference = f"{image['repository']}:{image['tag']}"
                manifest = deployment(key, self.namespace, reference, ready=True)
                del manifest["status"]  # a manifest says what is wanted, not what is
                manifests.append(manifest)
        return manifests

    async def apply(self, values: dict[str, Any], description: str) -> int:
        self.journal.calls.append(f"helm upgrade --install {self.namespace}")
        if _key("Namespace", None, self.namespace) not in self.cluster.objects:
            raise AssertionError(f"helm applied into namespace {self.namespace}, which is absent")
        self.values.append(values)
        return self._revise(values)

    async def rollback(self, to_revision: int | None = None) -> int:
        self.journal.calls.append(f"helm rollback {to_revision}")
        earlier = [r for r in self.history if r.revision == to_revision]
        if not earlier:
            self.revision += 1
            return self.revision
        return self._revise(earlier[-1].values)


class FakeImages:
    """:class:`reconciler.cycle.ports.Images` over a set of references."""

    def __init__(self, journal: Journal, present: Sequence[str] = ()) -> None:
        self.journal = journal
        self.present: set[str] = set(present)
        self.delivered: list[str] = []

    def data_root(self) -> pathlib.Path | None:
        return None

    def exists(self, reference: str) -> bool:
        return reference in self.present

    async def build(
        self,
        plugin: services.ServicePlugin,
        inputs: contexts.ServiceInputs,
        source: contexts.Source,
        *,
        image: str,
        log: builds.LogLine,
    ) -> builds.BuiltImage:
        reference = f"{image}:{inputs.tag}"
        self.journal.calls.append(f"docker build {reference}")
        reused = reference in self.present
        self.present.add(reference)
        return builds.BuiltImage(plugin.name, image, inputs.tag, reused, 0.0)

    def push(self, service: str, reference: str, log: builds.LogLine) -> str:
        self.journal.calls.append(f"docker push {reference}")
        return "sha256:" + "0" * 64

    def deliver(self, references: list[str]) -> None:
        self.journal.calls.append(f"load {' '.join(references)}")
        self.delivered.extend(references)


class FakeClock:
    """:class:`reconciler.cycle.ports.Clock` that moves only when told to."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now
        self.monotonic_now = 0.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.monotonic_now


class FakeNotifier:
    """:class:`reconciler.cycle.ports.Notifier` that keeps what it was told."""

    def __init__(self) -> None:
        self.results: list[outcomes.CycleResult] = []
        self.drifts: list[list[drifting.Drift]] = []
        self.stopped = False

    def cycle_ended(self, result: outcomes.CycleResult) -> bool:
        self.results.append(result)
        return True

    def drift_found(self, found: Sequence[drifting.Drift], revision: int | None) -> bool:
        self.drifts.append(list(found))
        return bool(found)

    def stop(self) -> None:
        self.stopped = True


@dataclasses.dataclass
class Fakes:
    """A toolbox on fakes, and the fakes, to arrange and to assert on."""

    box: toolboxes.Toolbox
    journal: Journal
    kube: FakeKube
    releases: FakeReleases
    images: FakeImages
    clock: FakeClock


def toolbox(
    config: settings.Settings,
    plugins: Sequence[services.ServicePlugin],
    objects: list[Object] | None = None,
    *,
    releases: type[FakeReleases] = FakeReleases,
    blocked_by: Sequence[Any] = (),
) -> Fakes:
    """Every port a fake sharing one journal; the rest real (settings, state, caches)."""
    journal = Journal()
    cluster = FakeKube(journal, objects)
    release = releases(journal, cluster, config.namespace)
    images = FakeImages(journal)
    clock = FakeClock()
    state_dir = config.repo_path(config.state_dir)
    box = toolboxes.Toolbox(
        config=config,
        plugins=plugins,
        deps=toolboxes.Dependencies(
            images=images,
            kube=cluster,
            releaser=release,
            store=state.Directory(state_dir),
            clock=clock,
        ),
        metrics=metrics.Metrics(),
        hash_cache=worktree_reading.HashCache(state_dir / "cache" / "hashes.json"),
        blocked_by=blocked_by,
    )
    return Fakes(box, journal, cluster, release, images, clock)
