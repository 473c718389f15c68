"""``.dockerignore`` semantics, from the docker SDK's implementation.

Only this module imports ``docker.utils.build``: Docker's pattern rules (``**``, ``!``
exceptions, parent-directory matches, the Dockerfile and ``.dockerignore`` always being
sent) are subtle, and re-implementing them would drift from what ``docker build`` reads.
"""

from __future__ import annotations

import functools
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
        # Matching is most of a re-plan's time on big trees, and a path's answer never
        # changes for the same patterns: remember it.
        self._excluded: dict[str, bool] = {}
        self._pruned: dict[str, bool] = {}

    def excluded(self, path: str) -> bool:
        """Whether the context-relative file ``path`` is left out of the build."""
        answer = self._excluded.get(path)
        if answer is None:
            answer = self._excluded[path] = bool(self._matcher.matches(path))
        return answer

    def prune(self, directory: str) -> bool:
        """Whether nothing below the excluded ``directory`` can be sent, so a walk may
        skip it (the same rule the SDK's own walk uses)."""
        answer = self._pruned.get(directory)
        if answer is None:
            prefix = directory.rstrip("/")
            answer = self._pruned[directory] = bool(self._matcher.matches(directory)) and not any(
                pattern.startswith(prefix) for pattern in self._exceptions
            )
        return answer


@functools.lru_cache(maxsize=64)
def context_filter(patterns: tuple[str, ...], dockerfile_in_context: str | None) -> ContextFilter:
    """The filter for these rules, shared by every plan that uses them."""
    return ContextFilter(patterns, dockerfile_in_context)
