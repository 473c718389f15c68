"""``lumina-reconcile db``: list and restore the database backups a service keeps.

Who calls it: users, through :mod:`reconciler.cli.main` (which mounts this Typer app as
``db``), and the fault tests. The service's plugin declares the commands
(:class:`services.DatabaseCommands`); they run in its running pod, online, so a restore
needs no downtime and asks nothing: it prints what it restored and how to undo it.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import rich.console
import rich.table
import typer

from reconciler import discovery, errors, services, settings

app = typer.Typer(
    no_args_is_help=True, help="Backups of the database a service owns (the backend's SQLite)."
)

RepoOption = Annotated[
    pathlib.Path | None,
    typer.Option(
        "--repo", help="Repository whose deployment to act on (default: LUMINA_REPO or .)."
    ),
]
ServiceOption = Annotated[
    str | None,
    typer.Option("--service", help="The service owning the database (default: the only one)."),
]
#: A restore copies the whole database; a large one on a slow volume takes a while.
TIMEOUT_SECONDS = 600.0


def _owner(
    plugins: tuple[services.ServicePlugin, ...], service: str | None
) -> tuple[services.ServicePlugin, services.DatabaseCommands]:
    owners = [p for p in plugins if p.database is not None and service in (None, p.name)]
    if len(owners) != 1:
        named = ", ".join(p.name for p in plugins if p.database is not None) or "none"
        raise errors.PermanentError(
            f"no single service owns a database{f' named {service!r}' if service else ''}",
            hint=f"services with database commands: {named}; choose one with --service",
        )
    plugin = owners[0]
    assert plugin.database is not None
    return plugin, plugin.database


def _connect(
    repo: pathlib.Path | None, service: str | None
) -> tuple[settings.Settings, services.ServicePlugin, services.DatabaseCommands, Any]:
    """The settings, the database's owner and its commands, and a connection to its cluster."""
    from reconciler.cli import wiring  # noqa: PLC0415 — slow imports, used here only
    from reconciler.cluster import kube  # noqa: PLC0415 — slow imports, used here only

    config = settings.load_settings(repo)
    found = discovery.discover_services(config.repo)
    plugin, commands = _owner(found.plugins, service)
    cluster = wiring.choose_provider(config).ensure_up()
    connection = kube.Kube(cluster.kubeconfig, config.kube_context or cluster.context)
    return config, plugin, commands, connection


def _run(
    repo: pathlib.Path | None,
    service: str | None,
    command: Callable[[services.DatabaseCommands], Sequence[str]],
    *extra: str,
) -> Any:
    """Run one of the owner's declared commands in its pod; the JSON it printed."""
    from reconciler.cluster import pod_commands  # noqa: PLC0415 — slow imports, used here only

    config, plugin, commands, connection = _connect(repo, service)
    argv = [*command(commands), *extra]
    out = pod_commands.run_in_service(
        connection, config.namespace, plugin.values_key, argv, timeout=TIMEOUT_SECONDS
    )
    try:
        return json.loads(out)
    except json.JSONDecodeError as exc:
        raise errors.PermanentError(
            f"`{' '.join(argv)}` in the {plugin.name} pod printed no JSON: {out.strip()[:300]}",
            hint="the deployed image may predate database backups; upgrade it first",
        ) from exc


def _describe(backup: dict[str, Any]) -> str:
    return f"{backup['name']} ({backup['size']} bytes, made {backup['created']})"


backups_app = typer.Typer(help="List the backups kept on the service's volume, or pull one.")
app.add_typer(backups_app, name="backups")


@backups_app.callback(invoke_without_command=True)
def backups(
    context: typer.Context,
    repo: RepoOption = None,
    service: ServiceOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON list.")] = False,
) -> None:
    """List the backups kept on the service's volume, newest first."""
    if context.invoked_subcommand is not None:
        return
    found = _run(repo, service, lambda commands: commands.list)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found:
        typer.echo("no backups yet: one is made before every upgrade that restarts the backend")
        return
    table = rich.table.Table()
    for column in ("name", "size", "created (UTC)", "label"):
        table.add_column(column)
    for backup in found:
        table.add_row(backup["name"], f"{backup['size']:,} B", backup["created"], backup["label"])
    rich.console.Console().print(table)


@backups_app.command("pull")
def pull(
    name: Annotated[
        str | None, typer.Argument(help="Backup to copy (default: the newest).")
    ] = None,
    to: Annotated[
        pathlib.Path | None,
        typer.Option(
            "--to", help="Directory to copy it into (default: backup_copies_dir, else .)."
        ),
    ] = None,
    repo: RepoOption = None,
    service: ServiceOption = None,
) -> None:
    """Copy a backup out of the pod to this machine, checked with integrity_check."""
    from reconciler.cluster import backup_copies  # noqa: PLC0415 — slow imports, used here only

    config, plugin, _, connection = _connect(repo, service)
    directory = to or (
        config.repo_path(config.backup_copies_dir) if config.backup_copies_dir else pathlib.Path()
    )
    path = backup_copies.pull(connection, config.namespace, plugin, name, directory)
    typer.echo(f"pulled {path.name} to {path} ({path.stat().st_size} bytes, integrity ok)")


@app.command("restore")
def restore(
    name: Annotated[
        str | None, typer.Argument(help="Backup to restore (default: the newest).")
    ] = None,
    repo: RepoOption = None,
    service: ServiceOption = None,
) -> None:
    """Restore a backup into the live database, online; what it replaces is kept."""
    # The daemon's lock, so no cycle's backup, revert or rollback races the restore.
    from reconciler.daemon import locking  # noqa: PLC0415 — used here only

    config = settings.load_settings(repo)
    lock = locking.RepositoryLock(config.repo_path(config.state_dir))
    try:
        lock.acquire()
    except locking.AlreadyRunningError as exc:
        raise errors.PermanentError(
            f"db restore refused: lumina-reconcile (PID {exc.pid or 'unknown'}) holds "
            f"{lock.path}, and a cycle it runs could back up, revert or roll back the "
            "database while it is restored",
            hint="stop it first (lumina-reconcile stop), restore, then start it again",
        ) from exc
    try:
        done = _run(repo, service, lambda commands: commands.restore, *([name] if name else []))
    finally:
        lock.release()
    typer.echo(f"restored {_describe(done['restored'])} into the live database")
    previous = done["previous"]
    typer.echo(f"the database as it was is kept as {_describe(previous)}")
    typer.echo(f"undo with: lumina-reconcile db restore {previous['name']}")
