"""The ``lumina-reconcile`` command line.

Who calls it: users, ``nox -s bootstrap`` and the tests. Each command loads settings and
plugins, does one thing, and turns a :class:`LuminaError` into a message on stderr and
exit code 2, so no user ever sees a traceback for a mistake they can fix.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import os
import pathlib
import shutil
import signal
import sys
import threading
import time
from typing import Annotated

import rich.console
import rich.table
import typer

from reconciler import discovery, errors, settings
from reconciler.cli import db_commands, logs_command, service_commands, verify_command
from reconciler.cluster import app_urls, providers
from reconciler.cycle import deciding, observing, planning, state
from reconciler.daemon import locking, reporting
from reconciler.inputs import contexts, git_reading, snapshots, worktree_reading

# Commands that talk to a cluster import their adapters (kubernetes, pyhelm3, docker,
# watchdog) when they run: `plan` and `status` must start fast, and work where those
# clients are not configured at all.


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
    state_dir = config.repo_path(config.state_dir)
    if state_dir.exists() and not state_dir.is_dir():
        raise errors.SettingsError(
            f"the state directory {state_dir} is a file, not a directory",
            hint=f"move it aside (mv {state_dir} {state_dir}.bak), or set LUMINA_STATE_DIR "
            "to another place; it is rebuilt from the live release",
        )
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
    """Show what the next cycle decides, and per service its digest, whether it must be
    rebuilt, and why (the daemon's own decision, from its saved state)."""
    config = _load(repo, mode=mode)
    found = _plugins(config)
    state_dir = config.repo_path(config.state_dir)
    sources = observing.Sources(
        config, found.plugins, worktree_reading.HashCache(state_dir / "cache" / "hashes.json")
    )
    try:
        seen = observing.observe_saved(sources, observing.Request())
    except contexts.MissingDockerfileError as exc:
        raise errors.RepositoryError(str(exc)) from exc
    if seen.state_problem:
        stderr.print(f"[yellow]warning[/]: {seen.state_problem}", highlight=False)
    decision = deciding.decide(seen)
    if since:
        assert seen.desired is not None
        earlier = snapshots.take_at(config, found.plugins, since)
        result = planning.plan_snapshot(seen.desired.snapshot, planning.baseline_of(earlier))
    else:
        result = seen.plan() or _paused(decision)
    if as_json:
        typer.echo(json.dumps({**result.to_json(), "decision": decision.to_json()}, indent=2))
        return
    typer.echo(f"decision: {decision.state.value} -> {decision.action.value} ({decision.reason})")
    label = seen.desired.snapshot.label if seen.desired else "paused"
    table = rich.table.Table(title=f"plan: {label} vs {result.baseline}")
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


def _paused(decision: deciding.Decision) -> planning.Plan:
    raise errors.RepositoryError(f"nothing to plan: {decision.reason}")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    # pyhelm3 logs every helm command (and "release not found" as a failure), urllib3
    # every retry: our own lines already say what happens and what failed.
    logging.getLogger("pyhelm3").setLevel(logging.ERROR)
    logging.getLogger("urllib3").setLevel(logging.ERROR)


def _locked(config: settings.Settings) -> locking.RepositoryLock:
    lock = locking.RepositoryLock(config.repo_path(config.state_dir))
    lock.acquire()
    return lock


ModeOption = Annotated[settings.TriggerMode | None, typer.Option(help="worktree or commit.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")]


@app.command()
def run(repo: RepoOption = None, mode: ModeOption = None, verbose: VerboseOption = False) -> None:
    """Reconcile continuously: watch the repository, build what changed, upgrade once."""
    from reconciler.cli import wiring  # noqa: PLC0415 — see the note on imports
    from reconciler.daemon import running  # noqa: PLC0415 — see the note on imports

    _setup_logging(verbose)
    # Told to stop while still starting (the lock is taken, the loop's own handlers are
    # not yet installed): that is a clean stop too, not death by signal.
    signal.signal(signal.SIGTERM, _stop_while_starting)
    config = _load(repo, mode=mode)
    lock = _locked(config)
    try:
        found = _plugins(config)
        box = wiring.assemble(config, found.plugins, blocked_by=found.unloadable)
        raise typer.Exit(running.run_daemon(box))
    finally:
        lock.release()


def _stop_while_starting(_signum: int, _frame: object) -> None:
    raise typer.Exit(0)


def _stopped_before_the_cycle(_signum: int, _frame: object) -> None:
    # Nothing was applied yet; the cluster was not brought to the repository's state.
    raise typer.Exit(1)


@app.command()
def once(repo: RepoOption = None, mode: ModeOption = None, verbose: VerboseOption = False) -> None:
    """Run one cycle; exit 0 when the cluster runs the repository's state, 1 otherwise."""
    from reconciler.cli import wiring  # noqa: PLC0415 — see the note on imports
    from reconciler.daemon import running  # noqa: PLC0415 — see the note on imports

    _setup_logging(verbose)
    signal.signal(signal.SIGTERM, _stopped_before_the_cycle)
    config = _load(repo, mode=mode)
    lock = _locked(config)
    try:
        found = _plugins(config)
        box = wiring.assemble(config, found.plugins, blocked_by=found.unloadable)
        result = asyncio.run(running.once_unless_stopped(box))
    finally:
        lock.release()
    # Every thread the cycle started has ended (a watch left reading at interpreter exit
    # aborted `once` with SIGABRT): said in debug, so a leak shows in `once -v`.
    left = [
        thread.name for thread in threading.enumerate() if thread is not threading.main_thread()
    ]
    logging.getLogger("lumina.reconcile").debug("threads at exit: %s", ", ".join(left) or "none")
    if result is None:
        typer.echo("stopped by a signal: the cycle was abandoned and the release checked")
        raise typer.Exit(1)
    typer.echo(f"{result.outcome.value}: {result.message}")
    if result.diagnosis is not None:
        typer.echo(result.diagnosis.explain())
    raise typer.Exit(0 if result.outcome.converged else 1)


def _rollout_states(config: settings.Settings) -> dict[str, str]:
    from reconciler.cli import wiring  # noqa: PLC0415 — see the note on imports
    from reconciler.cluster import kube, rollout  # noqa: PLC0415 — see the note on imports

    cluster = wiring.choose_provider(config).ensure_up()
    connection = kube.Kube(cluster.kubeconfig, config.kube_context or cluster.context)
    states: dict[str, str] = {}
    for plugin in discovery.discover_services(config.repo).plugins:
        found = connection.get("apps/v1", "Deployment", config.namespace, plugin.values_key)
        if found is None:
            states[plugin.name] = "absent"
            continue
        states[plugin.name] = rollout.describe_deployment(found)
    return states


@app.command()
def status(
    repo: RepoOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Also read rollout state from the cluster.")
    ] = False,
) -> None:
    """Per service: deployed tag and digest, the release revision, the last cycle."""
    config = _load(repo)
    # The daemon's own document (same keys as its /status), without what only it knows.
    document = reporting.status_document(config, rollouts=_rollout_states(config) if live else None)
    if as_json:
        typer.echo(json.dumps(document, indent=2))
        return
    pid = document["daemon"]["pid"]
    typer.echo(f"release {config.release} in {config.namespace}: revision {document['revision']}")
    typer.echo(f"daemon: {'running, PID ' + str(pid) if pid else 'not running'}")
    typer.echo(app_urls.describe(document["cluster"]))
    table = rich.table.Table()
    for column in ("service", "tag", "digest", "rollout"):
        table.add_column(column)
    for name, image in document["services"].items():
        # Without --live the rollout is only what the last cycles said: not shown as fact.
        shown = image["rollout"] if live else "(use --live)"
        table.add_row(name, image["tag"], image["digest"][:20], shown)
    rich.console.Console().print(table)
    if document["state_problem"]:
        stderr.print(f"[yellow]warning[/]: {document['state_problem']}", highlight=False)
    last = document["last_cycle"]
    if isinstance(last, dict):
        typer.echo(f"last cycle: {last.get('outcome', '?')} — {last.get('message', '')}")


@app.command()
def diagnose(
    service: Annotated[str | None, typer.Argument(help="One service; default: all.")] = None,
    repo: RepoOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Explain why a service is not healthy now, with its logs and events."""
    from reconciler.cli import wiring  # noqa: PLC0415 — see the note on imports
    from reconciler.cluster import kube, rollout  # noqa: PLC0415 — see the note on imports

    config = _load(repo)
    found = _plugins(config).plugins
    names = [plugin.values_key for plugin in found if service in (None, plugin.name)]
    if service and not names:
        raise errors.PermanentError(f"no service named {service!r}")
    provider = wiring.choose_provider(config)
    cluster = provider.ensure_up()
    connection = kube.Kube(cluster.kubeconfig, config.kube_context or cluster.context)
    diagnoses = [
        diagnosis
        for name in names
        if (diagnosis := rollout.inspect(connection, config.namespace, name)) is not None
    ]
    saved = state.load(config.repo_path(config.state_dir)).state
    last_failure = saved.history[-1].get("diagnosis") if saved.history else None
    if as_json:
        typer.echo(
            json.dumps(
                {"now": [d.to_json() for d in diagnoses], "last_rollout": last_failure}, indent=2
            )
        )
        return
    if not diagnoses:
        typer.echo(f"no failing pods now in namespace {config.namespace}")
    for diagnosis in diagnoses:
        typer.echo(diagnosis.explain())
    if last_failure:
        typer.echo("last failed rollout:")
        typer.echo(rollout.Diagnosis.from_json(last_failure).explain())
    if diagnoses and shutil.which("kubectl-ai"):
        typer.echo("kubectl-ai is installed: hand it this evidence with")
        question = f"why is this failing in namespace {config.namespace}?"
        typer.echo(f"  lumina-reconcile diagnose --json | kubectl-ai '{question}'")


@app.command()
def stop(repo: RepoOption = None, timeout: float = 120.0) -> None:
    """Stop the running daemon of this repository (SIGTERM) and wait for it."""
    config = _load(repo)
    state_dir = config.repo_path(config.state_dir)
    pid = locking.holder(state_dir)
    if pid is None:
        typer.echo("no daemon is running for this repository")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while locking.holder(state_dir) is not None:
        if time.monotonic() > deadline:
            raise errors.TemporaryError(f"daemon {pid} did not stop within {timeout:.0f}s")
        time.sleep(0.2)
    typer.echo(f"stopped daemon {pid}")


@app.command()
def drift(
    repo: RepoOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Report what was changed by hand in the cluster since the release; exit 1 if any."""
    from reconciler.cli import wiring  # noqa: PLC0415 — see the note on imports
    from reconciler.cycle import reconciling  # noqa: PLC0415 — see the note on imports

    config = _load(repo)
    box = wiring.assemble(config, _plugins(config).plugins)
    found = asyncio.run(reconciling.detect_drift(box))
    if as_json:
        typer.echo(json.dumps({"drift": [item.to_json() for item in found]}, indent=2))
    elif not found:
        typer.echo(f"no drift: the live objects match release {config.release}")
    else:
        for item in found:
            typer.echo(item.describe())
    raise typer.Exit(1 if found else 0)


class ClusterAction(enum.StrEnum):
    UP = "up"
    DOWN = "down"
    STATUS = "status"
    LOGS = "logs"
    WIPE = "wipe"


@app.command()
def cluster(
    action: Annotated[ClusterAction, typer.Argument(help="up, down, status, logs or wipe.")],
    repo: RepoOption = None,
) -> None:
    """Start, stop, inspect or wipe the cluster of the chosen provider (LUMINA_CLUSTER).

    wipe: stop it and delete its state, asking nothing; the next up starts it from empty.
    """
    from reconciler.cli import wiring  # noqa: PLC0415 — see the note on imports

    config = _load(repo)
    provider = wiring.choose_provider(config)
    if action is ClusterAction.UP:
        info = provider.ensure_up()
        typer.echo(f"{provider.name} cluster up: context {info.context}, node {info.node_ip}")
        typer.echo(f"kubeconfig: {info.kubeconfig}")
        recorded = app_urls.record(config.repo_path(config.state_dir), provider.name, info)
        typer.echo(app_urls.describe(recorded))
    elif action is ClusterAction.DOWN:
        provider.down()
        typer.echo(f"{provider.name} cluster stopped (state and volumes kept)")
    elif action is ClusterAction.WIPE:
        if not isinstance(provider, providers.WipeableProvider):
            raise errors.PermanentError(
                f"the {provider.name} cluster provider cannot wipe its cluster",
                hint=providers.wipe_elsewhere(provider.name, config.namespace),
            )
        provider.wipe()
        typer.echo(f"{provider.name} cluster wiped: the next `cluster up` starts it from empty")
    elif action is ClusterAction.LOGS:
        # Providers that keep component logs say where (optional part of the interface).
        where = getattr(provider, "log_directory", None)
        typer.echo(f"{provider.name} logs: {where() if callable(where) else 'see the provider'}")
    else:
        states = provider.status()
        for component, state_text in states.items():
            typer.echo(f"{component:24} {state_text}")
        if not all(text.startswith("running") for text in states.values()):
            raise typer.Exit(1)


app.add_typer(db_commands.app, name="db")
app.add_typer(service_commands.app, name="service")
app.command()(verify_command.verify)
app.command()(logs_command.logs)


def main() -> None:
    try:
        app()
    except errors.LuminaError as exc:
        stderr.print(f"[red]error[/]: {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
