"""From a plugin's declaration and a source (work tree or commit) to its build inputs.

Who calls it: the ``plan`` command and the reconcile loop. The :class:`Source` protocol
hides where files come from, so work-tree and commit mode share every rule here:
which ``.dockerignore`` applies (``<Dockerfile>.dockerignore`` first, as docker does,
then the context's), that the Dockerfile is always sent, and how a Dockerfile outside
the context counts.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Callable, Mapping
from typing import Protocol

from reconciler import services
from reconciler.inputs import digests, ignoring, trees


class Source(Protocol):
    """Where repository files are read from."""

    label: str

    def list(
        self,
        prefix: str,
        *,
        prune: Callable[[str], bool] = ...,
        excluded: Callable[[str], bool] = ...,
    ) -> dict[str, trees.FileEntry]:
        """Files below ``prefix`` by repository-relative path (filters get paths
        relative to ``prefix``)."""
        ...

    def read(self, path: str) -> bytes | None:
        """Content of one file, or None when it does not exist."""
        ...

    def entry(self, path: str) -> trees.FileEntry | None:
        """Entry of one file, or None when it does not exist."""
        ...

    def raw(self, path: str) -> bytes | None:
        """What git would store for ``path``: a file's bytes, a symlink's target."""
        ...


@dataclasses.dataclass(frozen=True)
class ServiceInputs:
    """What one service's image build reads, and its digest."""

    name: services.ServiceName
    digest: str
    #: repository-relative path -> entry, the Dockerfile included
    files: Mapping[str, trees.FileEntry]

    @property
    def tag(self) -> str:
        return digests.image_tag(self.digest)


class MissingDockerfileError(Exception):
    def __init__(self, path: str, source: str) -> None:
        super().__init__(f"Dockerfile {path!r} does not exist in {source}")


def _context_relative(path: str, context: str) -> str | None:
    context = context.rstrip("/")
    if context in ("", "."):
        return path
    return path[len(context) + 1 :] if path.startswith(context + "/") else None


def service_inputs(plugin: services.ServicePlugin, source: Source) -> ServiceInputs:
    """The build inputs of ``plugin`` as found in ``source``."""
    context = posixpath.normpath(plugin.context)
    dockerfile_path = posixpath.normpath(plugin.dockerfile)
    dockerfile = source.entry(dockerfile_path)
    if dockerfile is None:
        raise MissingDockerfileError(dockerfile_path, source.label)
    ignore_content = source.read(f"{dockerfile_path}.dockerignore")
    if ignore_content is None:
        ignore_content = source.read(posixpath.join(context, ".dockerignore")) or b""
    in_context = _context_relative(dockerfile_path, context)
    context_filter = ignoring.context_filter(
        tuple(ignoring.parse(ignore_content.decode("utf-8", "replace"))), in_context
    )
    files = source.list(context, prune=context_filter.prune, excluded=context_filter.excluded)
    base = "" if context == "." else context + "/"
    digest = digests.service_digest(
        {path[len(base) :]: entry for path, entry in files.items()},
        dockerfile,
        plugin.build_args,
    )
    if in_context is None:
        files = {**files, dockerfile_path: dockerfile}
    return ServiceInputs(name=plugin.name, digest=digest, files=files)


def chart_inputs(chart: str, source: Source) -> tuple[str, dict[str, trees.FileEntry]]:
    """Digest and files of the chart directory."""
    files = source.list(posixpath.normpath(chart))
    return digests.listing_digest(files), files
