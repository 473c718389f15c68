"""Change planning: which images to rebuild and whether the release needs an upgrade.

Pure: build inputs and a baseline in, a :class:`Plan` out. Who calls it: the cycle's
decide step (:mod:`reconciler.cycle.deciding`), for ``plan``, ``once`` and the daemon
alike. A service is rebuilt exactly when its digest differs from the baseline's (a
revision given with ``--since``) — or, against what is deployed, when the image the
release runs differs from the one wanted (the registry counts as well as the tag); the
chart and settings decide whether Helm must run even when no image changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from reconciler import services
from reconciler.inputs import contexts, trees

if TYPE_CHECKING:  # for its type only: reading a snapshot pulls in git, planning stays pure
    from reconciler.inputs import snapshots

MAX_REASON_PATHS = 3


@dataclasses.dataclass(frozen=True)
class Baseline:
    """What the current state is compared with."""

    label: str
    digests: Mapping[str, str]
    #: per service, the files behind its baseline digest, when known (for reasons)
    files: Mapping[str, Mapping[str, trees.FileEntry]]
    chart_digest: str | None
    chart_files: Mapping[str, trees.FileEntry] | None = None
    #: what is deployed, when the baseline is the deployment: per service the image
    #: (``repository:tag``) it runs, and the release's recorded chart-and-values inputs
    images: Mapping[str, str] | None = None
    release_inputs: str | None = None


@dataclasses.dataclass(frozen=True)
class Wanted:
    """What should run: per service the image reference, and the release inputs."""

    images: Mapping[str, str]
    release_inputs: str


EMPTY_BASELINE = Baseline(label="nothing deployed yet", digests={}, files={}, chart_digest=None)


def baseline_of(earlier: snapshots.Snapshot) -> Baseline:
    """An earlier revision's inputs (``plan --since REV``) as the baseline; a revision
    without the chart has no chart digest, so the chart plans as new."""
    return Baseline(
        label=earlier.label,
        digests={inputs.name: inputs.digest for inputs in earlier.services},
        files={inputs.name: inputs.files for inputs in earlier.services},
        chart_digest=earlier.chart_digest if earlier.chart_files else None,
        chart_files=earlier.chart_files,
    )


@dataclasses.dataclass(frozen=True)
class ServicePlan:
    name: services.ServiceName
    digest: str
    tag: str
    rebuild: bool
    reasons: tuple[str, ...]
    changed_paths: int


@dataclasses.dataclass(frozen=True)
class Plan:
    baseline: str
    services: tuple[ServicePlan, ...]
    chart_digest: str
    chart_changed: bool
    chart_reasons: tuple[str, ...]

    @property
    def rebuilds(self) -> tuple[ServicePlan, ...]:
        return tuple(service for service in self.services if service.rebuild)

    @property
    def needs_upgrade(self) -> bool:
        """Whether Helm must run: a new image or a changed chart."""
        return self.chart_changed or bool(self.rebuilds)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "services": [
                {
                    "name": service.name,
                    "digest": service.digest,
                    "tag": service.tag,
                    "rebuild": service.rebuild,
                    "reasons": list(service.reasons),
                    "changed_paths": service.changed_paths,
                }
                for service in self.services
            ],
            "chart": {
                "digest": self.chart_digest,
                "upgrade": self.chart_changed,
                "reasons": list(self.chart_reasons),
            },
            "helm_upgrade": self.needs_upgrade,
        }


def changed_paths(
    before: Mapping[str, trees.FileEntry], after: Mapping[str, trees.FileEntry]
) -> list[str]:
    """Human-readable differences between two listings, sorted by path."""
    changes: list[str] = []
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if old is None:
            changes.append(f"added {path}")
        elif new is None:
            changes.append(f"deleted {path}")
        elif old.oid == new.oid:
            changes.append(f"mode {old.mode}->{new.mode} {path}")
        elif trees.SYMLINK in (old.mode, new.mode):
            changes.append(f"symlink changed {path}")
        else:
            changes.append(f"modified {path}")
    return changes


def _summarise(changes: list[str]) -> tuple[str, ...]:
    shown = changes[:MAX_REASON_PATHS]
    if len(changes) > MAX_REASON_PATHS:
        shown.append(f"… and {len(changes) - MAX_REASON_PATHS} more ({len(changes)} paths changed)")
    return tuple(shown)


def _service_plan(
    inputs: contexts.ServiceInputs, baseline: Baseline, wanted: Wanted | None
) -> ServicePlan:
    previous = baseline.digests.get(inputs.name)
    if wanted is not None and baseline.images is not None:
        live, image = baseline.images.get(inputs.name), wanted.images[inputs.name]
        if live == image:
            return ServicePlan(
                inputs.name, inputs.digest, inputs.tag, False, (f"{baseline.label} runs it",), 0
            )
        if live is not None and previous == inputs.digest:
            return ServicePlan(
                inputs.name,
                inputs.digest,
                inputs.tag,
                True,
                (f"{baseline.label} runs {live}, not {image}",),
                0,
            )
    if previous == inputs.digest:
        return ServicePlan(
            inputs.name, inputs.digest, inputs.tag, False, (f"unchanged since {baseline.label}",), 0
        )
    if previous is None:
        reasons: tuple[str, ...] = (
            (baseline.label,) if baseline is EMPTY_BASELINE else (f"new: not in {baseline.label}",)
        )
        return ServicePlan(inputs.name, inputs.digest, inputs.tag, True, reasons, len(inputs.files))
    before = baseline.files.get(inputs.name)
    if before is None:
        return ServicePlan(
            inputs.name,
            inputs.digest,
            inputs.tag,
            True,
            (f"inputs differ from {baseline.label} (digest {previous[:12]})",),
            0,
        )
    changes = changed_paths(before, inputs.files)
    if not changes:
        # Same files, different digest: only the build arguments can differ.
        changes = ["build arguments changed"]
    return ServicePlan(
        inputs.name, inputs.digest, inputs.tag, True, _summarise(changes), len(changes)
    )


def plan(
    current: Sequence[contexts.ServiceInputs],
    chart_digest: str,
    chart_files: Mapping[str, trees.FileEntry],
    baseline: Baseline,
    wanted: Wanted | None = None,
) -> Plan:
    """Compare the current inputs with ``baseline`` (and with what it runs, when the
    baseline is the deployment and ``wanted`` says what should run)."""
    service_plans = tuple(_service_plan(inputs, baseline, wanted) for inputs in current)
    chart_reasons: tuple[str, ...]
    if wanted is not None and baseline.release_inputs is not None:
        chart_changed = baseline.release_inputs != wanted.release_inputs
        paths = (
            changed_paths(baseline.chart_files, chart_files)
            if chart_changed and baseline.chart_files is not None
            else []
        )
        if not chart_changed:
            chart_reasons = (f"chart and values as {baseline.label}",)
        elif paths:
            chart_reasons = _summarise(paths)
        elif baseline.chart_digest == chart_digest:
            chart_reasons = ("chart values in the settings changed",)
        else:
            chart_reasons = (f"chart or values differ from {baseline.label}",)
    elif baseline.chart_digest == chart_digest:
        chart_changed, chart_reasons = False, (f"chart unchanged since {baseline.label}",)
    elif baseline.chart_digest is None or baseline.chart_files is None:
        chart_changed = True
        chart_reasons = (
            (baseline.label,) if baseline is EMPTY_BASELINE else (f"not in {baseline.label}",)
        )
    else:
        chart_changed = True
        chart_reasons = _summarise(changed_paths(baseline.chart_files, chart_files))
    return Plan(
        baseline=baseline.label,
        services=service_plans,
        chart_digest=chart_digest,
        chart_changed=chart_changed,
        chart_reasons=chart_reasons,
    )


def plan_snapshot(
    snapshot: snapshots.Snapshot, baseline: Baseline, wanted: Wanted | None = None
) -> Plan:
    """:func:`plan` for the inputs one snapshot of the repository holds."""
    return plan(snapshot.services, snapshot.chart_digest, snapshot.chart_files, baseline, wanted)
