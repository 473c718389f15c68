"""``lumina-reconcile logs``: the services' pod logs, each line prefixed with its service.

Who calls it: users, in the dev loop beside the daemon; :mod:`reconciler.cli.main`
registers it. The following itself lives in :mod:`reconciler.cluster.log_streaming`;
here are the choice of services, the coloured prefixes and the printing.
"""

from __future__ import annotations

import pathlib
import threading
from typing import Annotated

import rich.console
import rich.text
import typer

from reconciler import discovery, errors, settings
from reconciler.inputs import git_reading

#: a colour per service, in the order the services are named
COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red")


def logs(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to show (default: all).")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep streaming, across rollouts.")
    ] = False,
    tail: Annotated[
        int, typer.Option(help="Lines of each running container to start with (-1: all).")
    ] = 20,
    repo: Annotated[
        pathlib.Path | None,
        typer.Option("--repo", help="Repository to reconcile (default: LUMINA_REPO or .)."),
    ] = None,
) -> None:
    """Stream the pods' logs of the chosen services with a coloured service prefix;
    with -f, follow new pods as they start (a rollout's new pod continues the stream)."""
    from reconciler.cli import wiring  # noqa: PLC0415 — commands import adapters when run
    from reconciler.cluster import kube, log_streaming  # noqa: PLC0415 — as above

    config = settings.load_settings(repo)
    git_reading.open_repository(config.repo)
    plugins = discovery.discover_services(config.repo).plugins
    known: dict[str, str] = {str(plugin.name): plugin.values_key for plugin in plugins}
    unknown = [name for name in services or () if name not in known]
    if unknown:
        raise errors.PermanentError(
            f"no service named {unknown[0]!r}", hint=f"services: {', '.join(sorted(known))}"
        )
    chosen = {name: known[name] for name in services or sorted(known)}
    cluster = wiring.choose_provider(config).ensure_up()
    connection = kube.Kube(cluster.kubeconfig, config.kube_context or cluster.context)
    console = rich.console.Console(highlight=False, soft_wrap=True, emoji=False)
    width = max(len(name) for name in chosen)
    styles = {name: COLOURS[index % len(COLOURS)] for index, name in enumerate(chosen)}
    printing = threading.Lock()

    def emit(service: str, started: log_streaming.Started | None, line: str) -> None:
        prefix = rich.text.Text(f"{service:<{width}} | ", style=styles[service])
        if started is not None:
            again = f", restart {started.restart}" if started.restart else ""
            said = f"-- pod {started.pod} (container {started.container}{again})"
            body = rich.text.Text(said, style="dim")
        else:
            body = rich.text.Text(line)
        with printing:
            console.print(prefix + body)

    follower = log_streaming.LogFollower(
        connection, config.namespace, chosen, emit, tail=None if tail < 0 else tail
    )
    if not follow:
        follower.show_recent()
        return
    stop = threading.Event()
    try:
        follower.follow(stop)
    except KeyboardInterrupt:
        stop.set()
