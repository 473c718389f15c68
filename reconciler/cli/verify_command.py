"""``lumina-reconcile verify``: the seed's verification table, against the live stack.

Who calls it: users after ``nox -s bootstrap`` (the README's verification section), and
the e2e tests; :mod:`reconciler.cli.main` registers :func:`verify` as a command. The
checks themselves are :mod:`reconciler.cluster.verifying`; this module finds the cluster
and the app's URL (from what the provider said, see :mod:`reconciler.cluster.app_urls`),
prints the table or JSON, and exits 0 only when every row passes.
"""

from __future__ import annotations

import json
import pathlib
from typing import Annotated

import rich.console
import rich.table
import typer

from reconciler import discovery, settings
from reconciler.cluster import app_urls


def verify(
    repo: Annotated[
        pathlib.Path | None,
        typer.Option("--repo", help="Repository whose deployment to check (default: .)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check the running stack as the seed's table does; exit 0 only when all pass."""
    from reconciler.cli import wiring  # noqa: PLC0415 — slow imports, used here only
    from reconciler.cluster import kube, verifying  # noqa: PLC0415 — slow imports, used here only

    config = settings.load_settings(repo)
    plugins = discovery.discover_services(config.repo).plugins
    provider = wiring.choose_provider(config)
    # A check never starts anything: a cluster that is not up is the one failing row.
    down = {
        part: state for part, state in provider.status().items() if not state.startswith("running")
    }
    where: dict[str, str] = {"app_url": "", "app_url_note": ""}
    if down:
        parts = ", ".join(f"{part} {state}" for part, state in down.items())
        checks = [
            verifying.Check(
                "cluster running",
                False,
                f"the {provider.name} cluster is not up: {parts}",
                "lumina-reconcile cluster status",
            )
        ]
    else:
        info = provider.ensure_up()
        where = app_urls.record(config.repo_path(config.state_dir), provider.name, info)
        connection = kube.Kube(info.kubeconfig, config.kube_context or info.context)
        checks = verifying.verify(
            connection,
            namespace=config.namespace,
            release=config.release,
            plugins=plugins,
            app_url=where["app_url"],
            app_url_note=where["app_url_note"],
        )
    passed = all(check.passed for check in checks)
    if as_json:
        document = {
            "passed": passed,
            "namespace": config.namespace,
            "app_url": where["app_url"],
            "checks": [check.to_json() for check in checks],
        }
        typer.echo(json.dumps(document, indent=2))
    else:
        table = rich.table.Table(title=f"verify: release {config.release} in {config.namespace}")
        for column in ("check", "result", "seen", "by hand"):
            table.add_column(column, overflow="fold")
        for check in checks:
            result = "[green]pass[/]" if check.passed else "[red]FAIL[/]"
            table.add_row(check.name, result, check.detail, check.by_hand)
        rich.console.Console().print(table)
        failed = sum(1 for check in checks if not check.passed)
        typer.echo("all checks pass" if passed else f"{failed} of {len(checks)} checks failed")
    raise typer.Exit(0 if passed else 1)
