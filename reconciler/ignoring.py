"""``.dockerignore`` semantics, from the docker SDK's implementation.

Only this module imports ``docker.utils.build``: Docker's pattern rules (``**``, ``!``
exceptions, parent-directory matches, the Dockerfile and ``.dockerignore`` always being
sent) are subtle, and re-implementing them would drift from what ``docker build`` reads.
"""

from __future__ import annotations

from collections.abc import Iterable

from docker.utils import build as docker_build


def parse(content: str) -> list[str]:
    """Patterns of a ``.dockerignore`` file, as the docker SDK reads them."""
    return [
        line.strip()
        for line in content.splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


class ContextFilter:
    """Decides which paths of a build context ``docker build`` sends."""

    def __init__(self, patterns: Iterable[str], dockerfile_in_context: str | None) -> None:
        rules = list(patterns)
        if dockerfile_in_context is not None:
            # docker always sends the Dockerfile, whatever .dockerignore says.
            rules.append(f"!{dockerfile_in_context}")
        self._matcher = docker_build.PatternMatcher(rules)
        self._exceptions = [
            pattern.cleaned_pattern for pattern in self._matcher.patterns if pattern.exclusion
        ]

    def excluded(self, path: str) -> bool:
        """Whether the context-relative file ``path`` is left out of the build."""
        return bool(self._matcher.matches(path))

    def prune(self, directory: str) -> bool:
        """Whether nothing below the excluded ``directory`` can be sent, so a walk may
        skip it (the same rule the SDK's own walk uses)."""
        if not self._matcher.matches(directory):
            return False
        prefix = directory.rstrip("/")
        return not any(pattern.startswith(prefix) for pattern in self._exceptions)
