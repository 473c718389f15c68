"""The upgrade action on an empty cluster: the namespace first, then what lives in it.

Real settings, plugins, git repository and ``config/secrets.env``; the cluster and Helm
are the in-memory fakes of ``tests/fakes.py`` (no cluster here: this is the unit level),
which refuse an object in a namespace that does not exist, as the API server does.
"""

from __future__ import annotations

import asyncio
import pathlib

import fakes
import pytest

from reconciler import discovery, settings
from reconciler.cluster import namespaces
from reconciler.cycle import deciding, observing, planning, state, toolboxes
from reconciler.cycle.actions import upgrade
from reconciler.inputs import secret_inputs

TAGS = {"frontend": "f" * 12, "backend": "b" * 12, "chatbot": "c" * 12}


def _box(
    project: pathlib.Path, objects: list[fakes.Object] | None = None, **overrides: object
) -> tuple[toolboxes.Toolbox, fakes.Journal, fakes.FakeReleases]:
    config = settings.load_settings(project, overrides=dict(overrides))
    fake = fakes.toolbox(config, discovery.discover_services(project).plugins, objects)
    return fake.box, fake.journal, fake.releases


def _first_install(box: toolboxes.Toolbox) -> observing.Observation:
    images = {name: f"lumina/{name}:{tag}" for name, tag in TAGS.items()}
    desired = observing.Desired(
        snapshot=None,  # type: ignore[arg-type]  (the upgrade does not read it)
        tags=TAGS,
        images=images,
        release_inputs="inputs",
        key="key",
    )
    return observing.Observation(
        request=observing.Request(first=True),
        paused="",
        desired=desired,
        saved=state.State(),
        state_problem="",
        release=None,
        release_read=True,
        baseline=planning.Baseline("nothing deployed", {}, {}, None),
        built=frozenset(TAGS),
        delivered=frozenset(TAGS),
    )


def _upgrade(box: toolboxes.Toolbox) -> observing.Observation:
    decision = deciding.Decision(deciding.CycleState.OUT_OF_SYNC, "first install", tuple(TAGS))
    return asyncio.run(upgrade.run(box, _first_install(box), decision))


def test_a_first_install_creates_the_namespace_before_anything_in_it(
    project: pathlib.Path,
) -> None:
    """Issue 21: on an empty cluster the checksum Secret was applied before the namespace
    existed, and every newcomer's bootstrap stopped there."""
    box, journal, releases = _box(project)
    assert not (project / "config" / "secrets.env").exists()

    seen = _upgrade(box)

    writes = journal.writes()
    assert writes[0] == "apply Namespace /lumina", writes
    assert writes[-1] == "helm upgrade --install lumina", writes
    secrets_applied = [w for w in writes if w.startswith("apply Secret lumina/")]
    assert "apply Secret lumina/lumina-reconciler" in secrets_applied
    assert "apply Secret lumina/backend-secrets" in secrets_applied
    # Nothing is written before the chart rendered and passed its checks.
    assert journal.calls.index("helm template") < journal.calls.index(writes[0])
    namespace = box.deps.kube.get("v1", "Namespace", None, "lumina")
    assert namespace is not None
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # The generated JWT key went to the git-ignored source, private to the user.
    source = project / "config" / "secrets.env"
    assert "JWT_SECRET_KEY=" in source.read_text()
    assert source.stat().st_mode & 0o077 == 0
    # ...and is recorded as deployed: the next cycle must not take it for a rotation.
    given = secret_inputs.fingerprints(
        box.plugins, source, secret_inputs.fingerprint_key(box.state_dir)
    )
    assert "backend-secrets" in given
    assert seen.desired is not None and seen.desired.secret_fingerprints == given
    assert seen.pending_rollout is not None and seen.pending_rollout.revision == 1
    assert "namespace lumina created (restricted Pod Security)" in seen.notes
    # The environment's NodePort reaches the chart.
    assert releases.values[0]["frontend"]["service"]["nodePort"] == 30080


def test_a_second_environment_gets_its_own_namespace_and_port(project: pathlib.Path) -> None:
    box, journal, releases = _box(project, namespace="lumina-review", node_port=30111)
    _upgrade(box)
    assert journal.writes()[0] == "apply Namespace /lumina-review"
    assert releases.values[0]["frontend"]["service"]["nodePort"] == 30111
    assert all("lumina-review/" in w for w in journal.writes() if w.startswith("apply Secret"))


def test_a_namespace_without_restricted_labels_gets_them_and_the_cycle_says_so(
    project: pathlib.Path,
) -> None:
    """``kubectl create namespace lumina`` by hand: adopted, labelled restricted."""
    created_by_hand = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "lumina", "labels": {"kubernetes.io/metadata.name": "lumina"}},
    }
    box, _journal, _ = _box(project, [created_by_hand])
    seen = _upgrade(box)
    labels = box.deps.kube.get("v1", "Namespace", None, "lumina")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    said = [note for note in seen.notes if note.startswith("namespace lumina")]
    assert said == [
        "namespace lumina did not enforce restricted Pod Security "
        "(enforce=unset, warn=unset, audit=unset): labelled restricted"
    ]


def test_a_namespace_another_tool_manages_is_refused_before_any_write(
    project: pathlib.Path,
) -> None:
    theirs = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "lumina", "labels": {"app.kubernetes.io/managed-by": "argocd"}},
    }
    box, journal, _ = _box(project, [theirs])
    with pytest.raises(namespaces.NamespaceRefusedError, match="managed by argocd"):
        _upgrade(box)
    assert journal.writes() == []


def test_a_node_port_another_environment_serves_is_refused_before_any_write(
    project: pathlib.Path,
) -> None:
    other = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lumina-other"}},
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "frontend", "namespace": "lumina-other"},
            "spec": {"type": "NodePort", "ports": [{"port": 3000, "nodePort": 30080}]},
        },
    ]
    box, journal, _ = _box(project, other)
    with pytest.raises(namespaces.NodePortTakenError, match="lumina-other") as refused:
        _upgrade(box)
    assert "LUMINA_NODE_PORT" in str(refused.value)
    assert journal.writes() == []


@pytest.mark.parametrize(
    ("metadata", "owner"),
    [
        ({"labels": {"app.kubernetes.io/managed-by": "lumina-reconcile"}}, ""),
        ({"labels": {}}, ""),
        (
            {
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "lumina-todo"},
            },
            "",
        ),
        (
            {
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": "shop"},
            },
            "Helm release 'shop'",
        ),
        ({"labels": {"kustomize.toolkit.fluxcd.io/name": "apps"}}, "kustomize.toolkit"),
    ],
)
def test_who_else_manages_a_namespace(metadata: dict[str, object], owner: str) -> None:
    found = {"kind": "Namespace", "metadata": {"name": "lumina", **metadata}}
    if owner:
        with pytest.raises(namespaces.NamespaceRefusedError, match=owner):
            namespaces.inspect(found, "lumina", "lumina-todo")
    else:
        namespaces.inspect(found, "lumina", "lumina-todo")


def test_a_namespace_being_deleted_is_a_retry() -> None:
    found = {
        "kind": "Namespace",
        "metadata": {"name": "lumina"},
        "status": {"phase": "Terminating"},
    }
    with pytest.raises(namespaces.errors.TemporaryError, match="being deleted"):
        namespaces.inspect(found, "lumina", "lumina-todo")
