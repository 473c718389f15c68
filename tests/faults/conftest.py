"""Fixtures of the fault suite: a clone that owns the release, the figures at the end.

Every test here injects one fault into the real stack (a signal to the daemon, a stopped
API server, a deleted pod, bad input) and checks an invariant afterwards: nothing is
left ``pending-*``, nothing acknowledged is lost, nothing changes in the cluster on bad
input. Run it with the cluster lock held, e.g.
``flock /tmp/lumina-cluster.lock python -m pytest tests/faults tests/security``.
"""

from __future__ import annotations

import lumina_stack
import pytest
from lumina_stack import environment, workspace  # noqa: F401  (fixtures)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lumina_stack.print_figures(terminalreporter.write_line)
