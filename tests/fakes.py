"""In-memory stand-ins for the cycle's cluster and Helm adapters, recording every call.

Used by unit tests that run an action on real settings, plugins and files but with no
cluster and no Helm: :class:`FakeKube` keeps objects in a dict and refuses, as the API
server does, an object whose namespace does not exist; :class:`FakeReleases` renders
nothing and applies revision numbers. Both record what they were asked, in order, in
one shared :class:`Journal`, so a test can assert the order of writes.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from reconciler.cluster import kube

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


def _key(kind: str, namespace: str | None, name: str) -> tuple[str, str, str]:
    return kind, namespace or "", name


class FakeKube:
    """The parts of :class:`reconciler.cluster.kube.Kube` an upgrade uses, in memory."""

    def __init__(self, journal: Journal, objects: list[Object] | None = None) -> None:
        self.journal = journal
        self.objects: dict[tuple[str, str, str], Object] = {}
        for body in objects or []:
            self._store(body)

    def _store(self, body: Object) -> None:
        metadata = body["metadata"]
        self.objects[_key(body["kind"], metadata.get("namespace"), metadata["name"])] = (
            copy.deepcopy(body)
        )

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
            for (found_kind, found_namespace, _), body in self.objects.items()
            if found_kind == kind and (namespace is None or found_namespace == namespace)
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
                if field != "metadata":
                    merged[field] = copy.deepcopy(value)
        self._store(merged)
        return copy.deepcopy(merged)


class FakeReleases:
    """A Helm release that renders ``rendered`` and counts revisions; no pods follow."""

    def __init__(self, journal: Journal, cluster: FakeKube, namespace: str) -> None:
        self.journal = journal
        self.cluster = cluster
        self.namespace = namespace
        self.revision = 0
        self.values: list[dict[str, Any]] = []

    async def current(self) -> None:
        return None

    async def recover(self) -> None:
        self.journal.calls.append("helm recover")
        return None

    async def render(self, values: dict[str, Any]) -> list[dict[str, Any]]:
        self.journal.calls.append("helm template")
        return []

    async def deployed_manifests(self) -> list[dict[str, Any]]:
        return []

    async def apply(self, values: dict[str, Any], description: str) -> int:
        self.journal.calls.append(f"helm upgrade --install {self.namespace}")
        if _key("Namespace", None, self.namespace) not in self.cluster.objects:
            raise AssertionError(f"helm applied into namespace {self.namespace}, which is absent")
        self.values.append(values)
        self.revision += 1
        return self.revision

    async def rollback(self, to_revision: int | None = None) -> int:
        self.journal.calls.append(f"helm rollback {to_revision}")
        self.revision += 1
        return self.revision
