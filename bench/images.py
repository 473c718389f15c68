"""#7 Images: size of each service image, cold build, warm rebuild after a one-line edit.

What it runs: the Docker CLI (``docker build`` through BuildKit, as
:func:`bench.stack.docker_build` finds it) on each service's Dockerfile and context in a
clone of this repository — the same build a user runs by hand. Cold is
``--no-cache`` (the base images are local, so nothing is pulled); warm is a rebuild after
a one-line source change with the normal layer cache, the dependency layers cached.
Sizes are ``docker image inspect``'s ``Size``. Cold builds take minutes each, so they run
once unless ``--repeat`` says otherwise; warm rebuilds run three times.
"""

from __future__ import annotations

import pathlib

from bench import measuring, stack
from reconciler import discovery, services

NAME = "images"
TITLE = "Images (docker build)"
#: the services issue's size targets (the seed's hard limit is 500 MB)
TARGET_MB = {"backend": 200.0, "chatbot": 300.0, "frontend": 250.0}
TAG = "lumina-bench"


def _build(clone: pathlib.Path, context: str, dockerfile: str, tag: str, *extra: str) -> float:
    command, env = stack.docker_build()
    with measuring.stopwatch() as elapsed:
        measuring.run(
            [
                *command,
                "-q",
                *stack.BUILD_FLAGS,
                *extra,
                "-t",
                tag,
                "-f",
                str(clone / dockerfile),
                str(clone / context),
            ],
            env=env,
            timeout=3600,
        )
    return elapsed()


def run(ctx: measuring.Context) -> measuring.GroupResult:
    stack.docker_ready()
    result = measuring.GroupResult(NAME, TITLE)
    clone = stack.clone(ctx, "images-repo")
    plugins: dict[str, services.ServicePlugin] = {
        plugin.name: plugin for plugin in discovery.discover_services(clone).plugins
    }
    built: list[str] = []
    try:
        for service in stack.SERVICES:
            plugin = plugins[service]
            image = f"{TAG}/{service}:bench"
            ctx.say(f"images: {service}: cold build (--no-cache)")
            cold = [
                _build(clone, plugin.context, plugin.dockerfile, image, "--no-cache")
                for _ in range(ctx.times(1))
            ]
            built.append(image)
            size = int(
                measuring.run(["docker", "image", "inspect", "-f", "{{.Size}}", image]).stdout
            )
            warm = []
            for index in range(ctx.times(3)):
                stack.edit(clone, service, f"images-{index}")
                ctx.say(f"images: {service}: warm rebuild {index + 1} after a one-line edit")
                warm.append(_build(clone, plugin.context, plugin.dockerfile, image))
            mb = size / 1e6
            result.raw[service] = {"size_bytes": size, "cold": cold, "warm": warm}
            result.rows += [
                measuring.Row(
                    f"{service}: image size",
                    f"{mb:.0f} MB",
                    f"< {TARGET_MB[service]:g} MB",
                    mb < TARGET_MB[service],
                ),
                measuring.Row(f"{service}: cold build (--no-cache)", measuring.spread(cold)),
                measuring.Row(f"{service}: warm rebuild, one-line edit", measuring.spread(warm)),
            ]
    finally:
        if built:
            measuring.run(["docker", "image", "rm", "-f", *built], check=False)
    return result
