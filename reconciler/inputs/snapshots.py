"""Observing the repository: the build inputs of every service and of the chart, now.

Who calls it: the ``plan`` command and the reconcile loop. It picks the source for the
trigger mode — the work tree (saved edits and untracked files) or the tracked branch's
committed tree (never anything uncommitted) — and reads an earlier revision for
``--since REV``. What a snapshot is compared with is the cycle's business
(:mod:`reconciler.cycle.planning`): this module only reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from reconciler import services, settings
from reconciler.inputs import contexts, git_reading, trees, worktree_reading


@dataclasses.dataclass(frozen=True)
class Snapshot:
    label: str
    services: tuple[contexts.ServiceInputs, ...]
    chart_digest: str
    chart_files: Mapping[str, trees.FileEntry]


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


def take_at(
    config: settings.Settings, plugins: Sequence[services.ServicePlugin], rev: str
) -> Snapshot:
    """The inputs at revision ``rev``, leaving out the services it did not have yet."""
    source = source_for(config, mode=settings.TriggerMode.COMMIT, rev=rev)
    found: list[contexts.ServiceInputs] = []
    for plugin in plugins:
        try:
            found.append(contexts.service_inputs(plugin, source))
        except contexts.MissingDockerfileError:
            continue  # the service did not exist yet at ``rev``: it plans as new
    chart_digest, chart_files = contexts.chart_inputs(config.chart, source)
    return Snapshot(f"{rev} ({source.label})", tuple(found), chart_digest, chart_files)
