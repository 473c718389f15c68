"""``lumina-reconcile service``: run the daemon under systemd ``--user``, or say why not.

Who calls it: users, and ``nox -s bootstrap`` with ``LUMINA_DAEMON=service``;
:mod:`reconciler.cli.main` mounts this Typer app as ``service``. The unit itself is
:mod:`reconciler.daemon.user_service`.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
from typing import Annotated

import typer

from reconciler import errors, settings
from reconciler.daemon import user_service

app = typer.Typer(
    no_args_is_help=True,
    help="The daemon as a systemd --user service (restarted on failure, logs in the journal).",
)

RepoOption = Annotated[
    pathlib.Path | None,
    typer.Option("--repo", help="Repository the daemon reconciles (default: LUMINA_REPO or .)."),
]


def _executable() -> pathlib.Path:
    """This installation's ``lumina-reconcile`` (beside the running interpreter first)."""
    beside = pathlib.Path(sys.executable).parent / "lumina-reconcile"
    if beside.is_file():
        return beside
    found = shutil.which("lumina-reconcile")
    if found is None:
        raise errors.PermanentError("cannot find the lumina-reconcile executable to run")
    return pathlib.Path(found).resolve()


@app.command()
def install(repo: RepoOption = None) -> None:
    """Write the user unit for this repository, enable it and (re)start the daemon."""
    config = settings.load_settings(repo)
    path = user_service.install(config.repo, _executable(), os.environ)
    typer.echo(f"installed {path} and started it")
    typer.echo(f"logs: journalctl --user -u {path.name}")


@app.command()
def uninstall(repo: RepoOption = None) -> None:
    """Stop and disable the user unit of this repository and remove it."""
    config = settings.load_settings(repo)
    removed = user_service.uninstall(config.repo, os.environ)
    typer.echo(
        f"removed {removed}" if removed else "no user unit was installed for this repository"
    )


@app.command()
def status(
    repo: RepoOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Whether the unit is installed and running; exit 0 only when it is active."""
    config = settings.load_settings(repo)
    document = user_service.status(config.repo, os.environ)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
    else:
        for line in user_service.describe(document):
            typer.echo(line)
    raise typer.Exit(0 if document["active"] == "active" else 1)
