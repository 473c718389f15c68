"""The ``lumina-reconcile`` command line.

Who calls it: users, ``nox -s bootstrap`` and the tests. Each command loads settings and
plugins, does one thing, and turns a :class:`LuminaError` into a message on stderr and
exit code 2, so no user ever sees a traceback for a mistake they can fix.
"""

from __future__ import annotations

import json
import pathlib
import sys
from typing import Annotated

import rich.console
import rich.table
import typer

from reconciler import (
    contexts,
    discovery,
    errors,
    git_reading,
    settings,
    snapshots,
    state,
    worktree_reading,
)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False)
stderr = rich.console.Console(stderr=True, soft_wrap=True)

RepoOption = Annotated[
    pathlib.Path | None,
    typer.Option("--repo", help="Repository to reconcile (default: LUMINA_REPO or .)."),
]


@app.callback()
def root() -> None:
    """Keep a Kubernetes deployment of Lumina Todo equal to its git repository."""


def _load(repo: pathlib.Path | None, **overrides: object) -> settings.Settings:
    given = {key: value for key, value in overrides.items() if value is not None}
    config = settings.load_settings(repo, overrides=given)
    git_reading.open_repository(config.repo)  # fail first, and clearly, outside a repository
    return config


def _plugins(config: settings.Settings) -> discovery.Discovered:
    found = discovery.discover_services(config.repo)
    for problem in found.problems:
        stderr.print(f"[yellow]warning[/]: {problem} (skipped)", highlight=False)
    return found


@app.command()
def plan(
    repo: RepoOption = None,
    since: Annotated[
        str | None,
        typer.Option(help="Compare with this revision's tree instead of the deployed state."),
    ] = None,
    mode: Annotated[settings.TriggerMode | None, typer.Option(help="worktree or commit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show, per service, its input digest, whether it must be rebuilt, and why."""
    config = _load(repo, mode=mode)
    found = _plugins(config)
    state_dir = config.repo_path(config.state_dir)
    cache = worktree_reading.HashCache(state_dir / "cache" / "hashes.json")
    source = snapshots.source_for(config, cache=cache)
    try:
        snapshot = snapshots.take(config, found.plugins, source)
    except contexts.MissingDockerfileError as exc:
        raise errors.RepositoryError(str(exc)) from exc
    cache.save()
    baseline = (
        snapshots.baseline_at(config, found.plugins, since)
        if since
        else state.baseline(state_dir, state.load(state_dir))
    )
    result = snapshot.plan(baseline)
    if as_json:
        typer.echo(json.dumps(result.to_json(), indent=2))
        return
    table = rich.table.Table(title=f"plan: {snapshot.label} vs {result.baseline}")
    for column in ("service", "tag", "rebuild", "why"):
        table.add_column(column)
    for service in result.services:
        table.add_row(
            service.name,
            service.tag,
            "yes" if service.rebuild else "no",
            "\n".join(service.reasons),
        )
    table.add_row(
        "(chart)",
        result.chart_digest[:20],
        "upgrade" if result.chart_changed else "no",
        "\n".join(result.chart_reasons),
    )
    rich.console.Console().print(table)


def main() -> None:
    try:
        app()
    except errors.LuminaError as exc:
        stderr.print(f"[red]error[/]: {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
