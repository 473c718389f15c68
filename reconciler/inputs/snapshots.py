"""Observing the repository: the build inputs of every service and of the chart, now.

Who calls it: the ``plan`` command and the reconcile loop. It picks the source for the
trigger mode — the work tree (saved edits and untracked files) or the tracked branch's
committed tree (never anything uncommitted) — and a baseline for ``--since REV``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from reconciler import services, settings
from reconciler.cycle import planning
from reconciler.inputs import contexts, git_reading, trees, worktree_reading


@dataclasses.dataclass(frozen=True)
class Snapshot:
    label: str
    services: tuple[contexts.ServiceInputs, ...]
    chart_digest: str
    chart_files: Mapping[str, trees.FileEntry]

    def plan(
        self, baseline: planning.Baseline, wanted: planning.Wanted | None = None
    ) -> planning.Plan:
        return planning.plan(self.services, self.chart_digest, self.chart_files, baseline, wanted)


def source_for(
    config: settings.Settings,
    *,
    mode: settings.TriggerMode | None = None,
    cache: worktree_reading.HashCache | None = None,
    memo: worktree_reading.ListingMemo | None = None,
    rev: str | None = None,
) -> contexts.Source:
    """The source a mode reads: the work tree, or the tracked branch (or ``rev``)."""
    chosen = mode or config.mode
    if chosen is settings.TriggerMode.WORKTREE and rev is None:
        return worktree_reading.WorktreeSource(config.repo, cache, memo)
    repository = git_reading.open_repository(config.repo)
    return git_reading.CommitSource(repository, rev or config.branch)


def take(
    config: settings.Settings,
    plugins: Sequence[services.ServicePlugin],
    source: contexts.Source,
) -> Snapshot:
    inputs = tuple(contexts.service_inputs(plugin, source) for plugin in plugins)
    chart_digest, chart_files = contexts.chart_inputs(config.chart, source)
    return Snapshot(source.label, inputs, chart_digest, chart_files)


def baseline_at(
    config: settings.Settings, plugins: Sequence[services.ServicePlugin], rev: str
) -> planning.Baseline:
    """The state of revision ``rev`` as a planning baseline."""
    source = source_for(config, mode=settings.TriggerMode.COMMIT, rev=rev)
    found: list[contexts.ServiceInputs] = []
    for plugin in plugins:
        try:
            found.append(contexts.service_inputs(plugin, source))
        except contexts.MissingDockerfileError:
            continue  # the service did not exist yet at ``rev``: it plans as new
    chart_digest, chart_files = contexts.chart_inputs(config.chart, source)
    return planning.Baseline(
        label=f"{rev} ({source.label})",
        digests={inputs.name: inputs.digest for inputs in found},
        files={inputs.name: inputs.files for inputs in found},
        chart_digest=chart_digest if chart_files else None,
        chart_files=chart_files,
    )
