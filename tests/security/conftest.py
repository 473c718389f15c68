"""Fixtures of the security suite: the real deployed stack, attacked from outside.

The helpers live in ``tests/faults/lumina_stack.py`` (shared with the fault suite).
Run with the cluster lock held:
``flock /tmp/lumina-cluster.lock python -m pytest tests/security``.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "faults"))

import lumina_stack  # found through the path set just above
import pytest


@pytest.fixture(scope="session")
def stack_ready(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The release exists and is deployed; at the end it runs this checkout's state again."""
    lumina_stack.assert_no_pending_release()
    yield
    lumina_stack.restore_release(tmp_path_factory.mktemp("restore"))


@pytest.fixture
def workspace(tmp_path: pathlib.Path, stack_ready: None) -> pathlib.Path:
    """A fresh clone of this checkout that deploys the same release in commit mode."""
    return lumina_stack.clone(tmp_path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lumina_stack.print_figures(terminalreporter.write_line)
