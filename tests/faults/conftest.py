"""Fixtures of the fault suite: a clone that owns the release, the figures at the end.

Every test here injects one fault into the real stack (a signal to the daemon, a stopped
API server, a deleted pod, bad input) and checks an invariant afterwards: nothing is
left ``pending-*``, nothing acknowledged is lost, nothing changes in the cluster on bad
input. Run it with the cluster lock held, e.g.
``flock /tmp/lumina-cluster.lock python -m pytest tests/faults tests/security``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import lumina_stack
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
