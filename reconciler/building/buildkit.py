"""Building through BuildKit, by way of the docker CLI.

Who calls it: :mod:`reconciler.building.builds`, which takes this path when the engine
and a CLI on ``PATH`` can drive BuildKit, and the engine's classic API otherwise. The
docker SDK speaks only the classic build API, which has no cache mounts (npm's cache,
Next's ``.next/cache``); BuildKit needs a session that the CLI opens. The CLI reads the
same digest-exact tar as the classic path, on stdin, and gets the same tag, labels and
build arguments. Its plain progress is streamed line by line, and the failing step is
read from it. A CLI from 23.0 on builds with BuildKit only through the buildx plugin;
older ones (Debian's 20.10) do it themselves under ``DOCKER_BUILDKIT=1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import IO

#: the engine API version that brought BuildKit (engine 18.09)
MIN_ENGINE_API = (1, 39)
_VERSION = re.compile(r"(\d+)\.(\d+)")
_VERTEX = re.compile(r"^#(\d+) (.*)$")
_NOT_A_NAME = re.compile(r"^(sha256:|\d+\.\d+ |DONE|CACHED|ERROR|CANCELED|\.\.\.)")
_CACHE_MOUNT = re.compile(r"[ \t]+(?:\\\r?\n[ \t]*)?--mount=(\S+)")
_RUN_FLAGS = re.compile(r"(?im)^([ \t]*RUN)((?:[ \t]+(?:\\\r?\n[ \t]*)?--\S+)+)")
_ENGINE_DOWN = ("cannot connect to the docker daemon", "error during connect")
#: what names the engine to a docker CLI; only the caller's ``environment`` may set them
ENGINE_VARIABLES = ("DOCKER_HOST", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Cli:
    """A docker CLI that builds with BuildKit: ``argv`` comes before the build options."""

    argv: tuple[str, ...]
    env: Mapping[str, str]

    def __str__(self) -> str:
        prefix = "".join(f"{key}={value} " for key, value in self.env.items())
        return prefix + " ".join(self.argv)


@dataclasses.dataclass(frozen=True)
class Unusable:
    """Why BuildKit cannot be used here."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Failure:
    """A BuildKit build that did not finish: what failed, where, and the last lines."""

    message: str
    step: str | None
    tail: list[str]
    engine_down: bool


def _version(text: str) -> tuple[int, int] | None:
    found = _VERSION.search(text)
    return (int(found[1]), int(found[2])) if found else None


def _clis(path: str) -> list[str]:
    """Every distinct ``docker`` executable on ``path``, in order."""
    found: list[str] = []
    for directory in path.split(os.pathsep):
        candidate = shutil.which("docker", path=directory) if directory else None
        if candidate and os.path.realpath(candidate) not in map(os.path.realpath, found):
            found.append(candidate)
    return found


def _output(argv: list[str], env: Mapping[str, str]) -> str | None:
    """The command's output, or None when it fails (a CLI without the subcommand)."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=20, env=dict(env), check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def find(environment: Mapping[str, str], *, engine_api: str, engine_os: str) -> Cli | Unusable:
    """The CLI command to build with: ``docker buildx build`` from any docker CLI on PATH
    that has the plugin, else ``docker build`` of a CLI older than 23.0 under
    ``DOCKER_BUILDKIT=1``; or why neither can be used."""
    api = _version(engine_api)
    if engine_os != "linux" or api is None or api < MIN_ENGINE_API:
        return Unusable(f"the engine ({engine_os}, API {engine_api}) has no BuildKit")
    env = {**os.environ, **environment}
    clis = _clis(env.get("PATH", os.defpath))
    if not clis:
        return Unusable("no docker CLI on PATH (BuildKit is driven through it)")
    older: str | None = None
    without_buildx: list[str] = []
    for cli in clis:
        if _output([cli, "buildx", "version"], env) is not None:
            # The engine's own builder: the image lands in the engine, nothing is exported.
            return Cli((cli, "buildx", "build", "--load"), {})
        version = _version(_output([cli, "--version"], env) or "")
        if version is not None and version < (23, 0):
            older = older or cli
        else:
            without_buildx.append(f"{cli} ({'.'.join(map(str, version or ()))})")
    if older is not None:
        return Cli((older, "build"), {"DOCKER_BUILDKIT": "1"})
    return Unusable(
        f"{', '.join(without_buildx)} lack the buildx plugin, and a docker CLI from 23.0 "
        "on builds with BuildKit only through it"
    )


def wanted(dockerfile: bytes) -> bool:
    """Whether ``dockerfile`` asks for what only BuildKit does (``RUN --mount`` …).

    Others build on the classic API even where BuildKit is at hand: BuildKit's layer
    cache buys them nothing, and on a busy machine the CLI's start, session and context
    upload made a one-layer rebuild slower (0.7 to 0.9 s against 0.25 to 0.4 s at a load
    of 6 on 2 cores; on an idle one both take about 0.27 s)."""
    return _RUN_FLAGS.search(dockerfile.decode("utf-8", "surrogateescape")) is not None


def without_cache_mounts(dockerfile: bytes) -> bytes:
    """``dockerfile`` for the classic builder: ``RUN --mount=type=cache`` flags dropped.

    A cache mount only speeds a step up (its content must not change the result), so
    the classic builder runs the same step without one. Other mounts are left in place:
    those change what the step sees, and the classic builder then names the flag."""

    def drop(run: re.Match[str]) -> str:
        def keep(flag: re.Match[str]) -> str:
            return "" if "type=cache" in flag[1].split(",") else flag[0]

        return run[1] + _CACHE_MOUNT.sub(keep, run[2])

    text = dockerfile.decode("utf-8", "surrogateescape")
    return _RUN_FLAGS.sub(drop, text).encode("utf-8", "surrogateescape")


def _argv(
    cli: Cli,
    *,
    dockerfile: str,
    reference: str,
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
) -> list[str]:
    argv = [*cli.argv, "--progress=plain", "-f", dockerfile, "-t", reference]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    for key, value in build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, "-"]  # the context: the tar on stdin


async def _feed(context: IO[bytes], stdin: asyncio.StreamWriter) -> None:
    try:
        while chunk := await asyncio.to_thread(context.read, _CHUNK):
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the CLI stopped reading: its exit status and output say why
    finally:
        stdin.close()


async def build(
    cli: Cli,
    context: IO[bytes],
    *,
    dockerfile: str,
    reference: str,
    labels: Mapping[str, str],
    build_args: Mapping[str, str],
    environment: Mapping[str, str],
    log: Callable[[str], None],
) -> Failure | None:
    """Build ``context`` (a tar) as ``reference`` on the engine ``environment`` names
    (``DOCKER_HOST`` …; this process's own engine variables and the CLI's current
    context are not used); None when it built. Cancelling (the build timeout, a stop)
    ends the CLI, which ends the engine's build with it."""
    inherited = {k: v for k, v in os.environ.items() if k not in ENGINE_VARIABLES}
    argv = _argv(
        cli, dockerfile=dockerfile, reference=reference, labels=labels, build_args=build_args
    )
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**inherited, **environment, **cli.env},
    )
    assert process.stdin is not None and process.stdout is not None
    feeding = asyncio.create_task(_feed(context, process.stdin), name="buildkit-context")
    names: dict[str, str] = {}
    step: str | None = None
    tail: list[str] = []
    try:
        async for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            vertex = _VERTEX.match(line)
            if vertex:
                number, text = vertex.groups()
                if text.startswith("sha256:"):
                    continue  # a vertex digest: noise in a log
                if number not in names and not _NOT_A_NAME.match(text):
                    names[number] = text
                if text.startswith("ERROR"):
                    step = names.get(number, step)
            if not line.strip():
                continue
            tail = [*tail[-19:], line]
            log(line)
        code = await process.wait()
        await feeding
    except BaseException:
        feeding.cancel()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                with contextlib.suppress(ProcessLookupError):
                    await process.wait()
        raise
    if code == 0:
        return None
    message = next(
        (line.removeprefix("ERROR: ") for line in reversed(tail) if not line.startswith("-")),
        f"{cli} exited with status {code}",
    )
    down = any(marker in message.lower() for marker in _ENGINE_DOWN)
    return Failure(message, step, tail, down)
