"""#3 No-op: a docs-only commit must cost no build, no helm call, and under a second.

What it runs: in a clone of this repository, in commit mode, the daemon's own cycle
(``reconciling.run_cycle`` as the daemon calls it after its first cycle) over a state
that says the clone's HEAD is deployed; then a docs-only commit; then the cycle again.
Every adapter is real but cannot reach anything without being counted: helm is a shim
that logs each invocation and then runs the real helm, the kubeconfig points at a closed
port, and the docker client is created only on a build (``Runtime.counters``). So any
cluster call would show up as a count or as a failed cycle, not as a silent cost.

The ``plan`` command (a fresh process: start-up, plugin discovery, git read) is timed on
the same commit too, since that is what a user runs by hand to see "nothing to do".
"""

from __future__ import annotations

import asyncio
import pathlib
import shutil
import sys
import textwrap

from bench import measuring
from reconciler import discovery, settings
from reconciler.building import engines
from reconciler.cli import wiring
from reconciler.cluster import kube
from reconciler.cycle import metrics, observing, reconciling, state, toolboxes
from reconciler.cycle import outcomes as cycle_outcomes
from reconciler.inputs import worktree_reading
from reconciler.releasing import helm

NAME = "noop"
TITLE = "No-op (docs-only commit, commit mode)"
TARGET = 1.0

_UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: closed, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: nobody, user: {token: none}}]
contexts: [{name: closed, context: {cluster: closed, user: nobody}}]
current-context: closed
"""


def _helm_shim(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    try:
        real = wiring.helm_executable()
    except Exception:
        real = "/nonexistent/helm"  # never reached unless something calls helm: then counted
    log = directory / "helm-calls.log"
    shim = directory / "helm"
    shim.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            echo "$*" >> '{log}'
            exec '{real}' "$@"
            """
        ),
        encoding="utf-8",
    )
    shim.chmod(0o755)
    log.touch()
    return shim, log


def _box(config: settings.Settings, work: pathlib.Path, shim: pathlib.Path) -> toolboxes.Toolbox:
    kubeconfig = work / "kubeconfig-closed"
    kubeconfig.write_text(_UNREACHABLE_KUBECONFIG, encoding="utf-8")
    plugins = discovery.discover_services(config.repo).plugins
    state_dir = config.repo_path(config.state_dir)
    provider = wiring.choose_provider(config)
    return toolboxes.Toolbox(
        config=config,
        plugins=plugins,
        deps=toolboxes.Dependencies(
            images=engines.DockerImages(
                config, docker_env=provider.docker_env, load_images=provider.load_images
            ),
            kube=kube.Kube(kubeconfig, "closed"),
            releaser=helm.Releaser(
                helm=str(shim),
                kubeconfig=kubeconfig,
                kube_context="closed",
                namespace=config.namespace,
                release=config.release,
                chart=config.repo_path(config.chart),
                timeout_seconds=30,
            ),
            store=state.Directory(state_dir),
        ),
        metrics=metrics.Metrics(),
        hash_cache=worktree_reading.HashCache(state_dir / "cache" / "hashes.json"),
    )


def _seed_state(box: toolboxes.Toolbox) -> None:
    """The state the daemon leaves after deploying HEAD: every service's digest and tag,
    the release inputs and the secrets' fingerprints, so the cycle needs no release read."""
    wanted = observing.desired(observing.Sources.of(box))
    saved = state.State(
        services={
            inputs.name: state.DeployedImage(
                digest=inputs.digest,
                tag=inputs.tag,
                image=wanted.images[inputs.name].removesuffix(f":{inputs.tag}"),
            )
            for inputs in wanted.snapshot.services
        },
        chart_digest=wanted.snapshot.chart_digest,
        release_inputs=wanted.release_inputs,
        secret_fingerprints=dict(wanted.secret_fingerprints),
        revision=1,
    )
    state.save(box.state_dir, saved)


def run(ctx: measuring.Context) -> measuring.GroupResult:
    result = measuring.GroupResult(NAME, TITLE)
    clone = ctx.work / "noop-repo"
    measuring.run(["git", "clone", "-q", "--shared", str(ctx.repo), str(clone)])
    measuring.git(clone, "config", "user.email", "bench@lumina.invalid")
    measuring.git(clone, "config", "user.name", "lumina bench")
    measuring.git(clone, "checkout", "-q", "-B", "main")
    config = settings.load_settings(clone, overrides={"mode": settings.TriggerMode.COMMIT})
    shim, helm_log = _helm_shim(ctx.work)
    box = _box(config, ctx.work, shim)
    # pyhelm3 runs `helm version` once when the daemon starts; the cycles are what count.
    startup_calls = helm_log.read_text(encoding="utf-8").splitlines()
    helm_log.write_text("", encoding="utf-8")
    _seed_state(box)

    cycles: list[float] = []
    outcomes: list[str] = []
    for index in range(ctx.times(10)):
        docs = clone / "docs-bench.md"
        docs.write_text(f"docs-only change {index}\n", encoding="utf-8")
        measuring.git(clone, "add", "docs-bench.md")
        measuring.git(clone, "commit", "-q", "-m", f"docs: bench change {index}")
        # A daemon keeps its hash cache in memory across cycles; commit mode reads git.
        with measuring.stopwatch() as elapsed:
            cycle = asyncio.run(reconciling.run_cycle(box, first=False))
        cycles.append(elapsed())
        outcomes.append(cycle.outcome.value)
    helm_calls = [line for line in helm_log.read_text(encoding="utf-8").splitlines() if line]

    plan_cli: list[float] = []
    executable = shutil.which("lumina-reconcile") or str(
        pathlib.Path(sys.executable).with_name("lumina-reconcile")
    )
    for _ in range(ctx.times(3)):
        with measuring.stopwatch() as elapsed:
            done = measuring.run(
                [executable, "plan", "--mode", "commit", "--json", "--repo", str(clone)]
            )
        plan_cli.append(elapsed())
    planned_rebuilds = done.stdout.count('"rebuild": true')

    builds = box.runtime.counters["docker_builds"]
    upgrades = box.runtime.counters["helm_upgrades"]
    reads = box.runtime.counters["helm_reads"]
    all_noop = all(outcome == cycle_outcomes.Outcome.NOTHING_TO_DO.value for outcome in outcomes)
    result.raw.update(
        cycle_seconds=cycles,
        outcomes=outcomes,
        counters=dict(box.runtime.counters),
        helm_invocations=helm_calls,
        helm_invocations_at_startup=startup_calls,
        plan_cli_seconds=plan_cli,
        plan_cli_rebuilds=planned_rebuilds,
    )
    result.rows = [
        measuring.Row(
            "daemon cycle after a docs-only commit",
            f"{measuring.spread(cycles)}; outcome "
            + ("nothing-to-do" if all_noop else ", ".join(sorted(set(outcomes)))),
            f"<= {measuring.seconds(TARGET)}",
            measuring.median(cycles) <= TARGET and all_noop,
        ),
        measuring.Row(
            "docker builds / helm calls in those cycles",
            f"{builds} builds, {len(helm_calls)} helm processes "
            f"({upgrades} upgrades, {reads} release reads)",
            "0 / 0",
            builds == 0 and not helm_calls and upgrades == 0 and reads == 0,
        ),
        measuring.Row(
            "`lumina-reconcile plan --mode commit` (new process)",
            f"{measuring.spread(plan_cli)}; {planned_rebuilds} rebuilds planned",
            "0 rebuilds",
            planned_rebuilds == 0,
        ),
    ]
    result.notes.append(
        "the daemon's state was seeded from the clone's HEAD snapshot (what the daemon "
        "writes after deploying HEAD); `once` always re-reads the release (first=True), "
        "so the daemon's cycle is the no-op path measured"
    )
    return result
