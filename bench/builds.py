"""#7b Builds: a one-line edit → built image, through the reconciler's build adapter.

What it runs: :func:`reconciler.building.builds.build` (what the daemon runs) in a clone
of this repository, against the local engine. Each round makes one one-line edit (the
frontend's ``lib/errors.ts``, the backend's ``app/main.py``), then builds every variant
of it in turn, so that the machine's load falls on all of them alike; one build per
variant first warms its caches. The variants:

- frontend, BuildKit: the adapter as it runs, cache mounts for npm and ``.next/cache``;
- frontend, classic: the adapter with no docker CLI on its PATH (what a machine without
  one gets): the classic API, the cache mounts dropped;
- frontend, webpack: BuildKit with ``next build --webpack`` instead of Turbopack (Next
  16's default), its own cache mount;
- frontend, before: the Dockerfile before the cache mounts, classic, for its size;
- backend: the adapter as it runs (the classic API: its Dockerfile has no cache mount),
  and forced through BuildKit, to show why it is not.

A BuildKit image of each frontend build system is then started and asked for a page.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pathlib
import re
import time
from collections.abc import Callable
from typing import Any

from bench import measuring, stack
from reconciler import discovery, services
from reconciler.building import buildkit, builds, packing
from reconciler.inputs import contexts, worktree_reading

NAME = "builds"
TITLE = "Builds (the reconciler's adapter: BuildKit and classic)"
IMAGE = "bk-bench"
#: the issue's edit-to-serving goal is 12 s, of which Ready takes ~3.4 s
FRONTEND_TARGET = 8.0
BEFORE_DOCKERFILE_COMMIT = "ff879a6"


def _variant(
    clone: pathlib.Path, plugin: services.ServicePlugin, name: str, rewrite: Callable[[str], str]
) -> services.ServicePlugin:
    """``plugin`` with its Dockerfile rewritten, imaged as ``name``. The file lies outside
    the context, so every variant builds the same context."""
    original = clone / plugin.dockerfile
    dockerfile = clone / "bench-dockerfiles" / f"{plugin.name}.{name}"
    dockerfile.parent.mkdir(exist_ok=True)
    text = rewrite(original.read_text(encoding="utf-8"))
    # A line of its own: no two variants share a digest, so none reuses another's image.
    dockerfile.write_text(f"# bench variant: {name}\n{text}", encoding="utf-8")
    return dataclasses.replace(
        plugin,
        dockerfile=str(dockerfile.relative_to(clone)),
        image=f"{IMAGE}/{plugin.name}-{name}",
    )


#: next build's own timings in its output: "✓ Compiled successfully in 2.8s" …
_NEXT_PHASES = {
    "compile": re.compile(r"Compiled successfully in ([\d.]+)(m?s)"),
    "typescript": re.compile(r"Finished TypeScript in ([\d.]+)(m?s)"),
}


def _build(
    client: Any,
    plugin: services.ServicePlugin,
    clone: pathlib.Path,
    phases: dict[str, list[float]] | None = None,
) -> tuple[str, float]:
    """Build through the adapter; ``phases`` collects next build's own timings."""
    source = worktree_reading.WorktreeSource(clone)
    inputs = contexts.service_inputs(plugin, source)
    lines: list[str] = []
    started = time.perf_counter()
    built = asyncio.run(
        builds.build(
            client, plugin, inputs, source, log=lambda _s, line: lines.append(line), timeout=1800
        )
    )
    seconds = time.perf_counter() - started
    assert not built.reused, f"{built.reference} was already built"
    for phase, pattern in _NEXT_PHASES.items():
        found = [match for line in lines if (match := pattern.search(line))]
        if phases is not None and found:
            value, unit = float(found[-1][1]), found[-1][2]
            phases.setdefault(phase, []).append(value / 1000 if unit == "ms" else value)
    return built.reference, seconds


def _through_buildkit(
    cli: buildkit.Cli, plugin: services.ServicePlugin, clone: pathlib.Path, reference: str
) -> float:
    source = worktree_reading.WorktreeSource(clone)
    inputs = contexts.service_inputs(plugin, source)
    started = time.perf_counter()
    context, dockerfile = packing.pack(plugin, inputs, source)
    failed = asyncio.run(
        buildkit.build(
            cli,
            context,
            dockerfile=dockerfile,
            reference=reference,
            labels={},
            build_args={},
            environment={},
            log=lambda _line: None,
        )
    )
    assert failed is None, failed
    return time.perf_counter() - started


def _size_mb(reference: str) -> float:
    return (
        int(measuring.run(["docker", "image", "inspect", "-f", "{{.Size}}", reference]).stdout)
        / 1e6
    )


def _serves(reference: str) -> bool:
    """The image starts and answers its sign-in page and health route."""
    container = f"bk-bench-serve-{int(time.time() * 1000)}"
    measuring.run(
        ["docker", "run", "-d", "--rm", "--name", container, "-p", "127.0.0.1::3000", reference]
    )
    try:
        port = measuring.run(["docker", "port", container, "3000"]).stdout.split(":")[-1].strip()
        for _ in range(60):
            pages = [
                measuring.run(
                    [
                        "curl",
                        "-s",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                        f"http://127.0.0.1:{port}{path}",
                    ],
                    check=False,
                ).stdout
                for path in ("/sign-in", "/api/health")
            ]
            if pages == ["200", "200"]:
                return True
            time.sleep(0.5)
        return False
    finally:
        measuring.run(["docker", "rm", "-f", container], check=False)


def run(ctx: measuring.Context) -> measuring.GroupResult:
    stack.docker_ready()
    # An earlier run cut short (an engine restart) leaves images that would be reused.
    leftovers = measuring.run(["docker", "images", "-q", f"{IMAGE}/*"]).stdout.split()
    if leftovers:
        measuring.run(["docker", "image", "rm", "-f", *set(leftovers)], check=False)
    result = measuring.GroupResult(NAME, TITLE)
    clone = stack.clone(ctx, "builds-repo")
    plugins = {p.name: p for p in discovery.discover_services(clone).plugins}
    frontend, backend = plugins["frontend"], plugins["backend"]
    before_text = measuring.git(
        ctx.repo, "show", f"{BEFORE_DOCKERFILE_COMMIT}:services/frontend/Dockerfile"
    )
    variants = {
        "buildkit": _variant(clone, frontend, "buildkit", lambda text: text),
        "classic": _variant(clone, frontend, "classic", lambda text: text),
        "webpack": _variant(
            clone,
            frontend,
            "webpack",
            lambda text: text.replace("npm run build", "npm run build -- --webpack").replace(
                "id=lumina-frontend-next", "id=lumina-frontend-next-webpack"
            ),
        ),
    }
    before = _variant(clone, frontend, "before", lambda _text: before_text + "\n")
    backend_plugin = dataclasses.replace(backend, image=f"{IMAGE}/backend")
    with_cli = builds.connect({})
    without_cli = builds.connect({"PATH": ""})
    cli = builds.builder(with_cli)
    if not isinstance(cli, buildkit.Cli):
        raise measuring.NotRunError(f"BuildKit is not usable here: {cli.reason}")
    clients = {"buildkit": with_cli, "classic": without_cli, "webpack": with_cli}
    made: list[str] = []
    times: dict[str, list[float]] = {name: [] for name in [*variants, "backend", "backend-bk"]}
    phases: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    last: dict[str, str] = {}
    try:
        ctx.say("builds: warming each variant (a first build, not counted)")
        for name, plugin in variants.items():
            last[name], _ = _build(clients[name], plugin, clone)
            made.append(last[name])
        reference, _ = _build(without_cli, before, clone)
        made.append(reference)
        before_mb = _size_mb(reference)
        last["backend"], _ = _build(with_cli, backend_plugin, clone)
        made.append(last["backend"])
        _through_buildkit(cli, backend_plugin, clone, f"{IMAGE}/backend-bk:warm")
        made.append(f"{IMAGE}/backend-bk:warm")
        for index in range(ctx.times(3)):
            stack.edit(clone, "frontend", f"builds-{index}")
            stack.edit(clone, "backend", f"builds-{index}")
            for name, plugin in variants.items():
                ctx.say(f"builds: round {index + 1}: frontend, {name}")
                last[name], seconds = _build(clients[name], plugin, clone, phases[name])
                made.append(last[name])
                times[name].append(seconds)
            ctx.say(f"builds: round {index + 1}: backend")
            last["backend"], seconds = _build(with_cli, backend_plugin, clone)
            made.append(last["backend"])
            times["backend"].append(seconds)
            reference = f"{IMAGE}/backend-bk:{index}"
            times["backend-bk"].append(_through_buildkit(cli, backend_plugin, clone, reference))
            made.append(reference)
        sizes = {name: _size_mb(last[name]) for name in variants}
        serves = {name: _serves(last[name]) for name in ("buildkit", "webpack")}
    finally:
        measuring.run(["docker", "image", "rm", "-f", *made], check=False)
    result.raw = {
        "seconds": times,
        "next_build_phases": phases,
        "sizes_mb": {**sizes, "before": before_mb},
        "serves": serves,
    }
    medians = {name: measuring.median(values) for name, values in times.items()}
    spread = {name: measuring.spread(values) for name, values in times.items()}
    result.rows += [
        measuring.Row(
            "frontend: one-line edit → built image, BuildKit (Turbopack, cache mounts)",
            spread["buildkit"],
            f"≤ {FRONTEND_TARGET:g} s",
            medians["buildkit"] <= FRONTEND_TARGET,
        ),
        measuring.Row("frontend: the same, classic builder (before)", spread["classic"]),
        measuring.Row(
            "frontend: the same, BuildKit, `next build --webpack`",
            spread["webpack"] + ("" if serves["webpack"] else "; the image does not serve"),
        ),
        measuring.Row(
            "frontend: image size, BuildKit / classic / before",
            f"{sizes['buildkit']:.0f} / {sizes['classic']:.0f} / {before_mb:.0f} MB",
            "not above before",
            sizes["buildkit"] <= before_mb + 0.5,
        ),
        measuring.Row(
            "backend: one-line edit → built image (classic API, as before)",
            spread["backend"],
            "≤ 0.3 s",
            medians["backend"] <= 0.3,
        ),
        measuring.Row(
            "backend: the same, forced through BuildKit (not used)", spread["backend-bk"]
        ),
        *(
            measuring.Row(
                f"frontend, {name}: next build's compile / TypeScript",
                " / ".join(
                    measuring.seconds(measuring.median(phases[name].get(phase, [0.0])))
                    for phase in _NEXT_PHASES
                ),
            )
            for name in variants
        ),
        measuring.Row(
            "frontend: the BuildKit images serve their pages",
            ", ".join(f"{name} {'yes' if ok else 'no'}" for name, ok in serves.items()),
        ),
    ]
    return result
