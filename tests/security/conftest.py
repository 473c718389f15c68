"""Fixtures of the security suite: the real deployed stack, attacked from outside.

The helpers live in ``tests/faults/lumina_stack.py`` (shared with the fault suite).
Run with the cluster lock held:
``flock /tmp/lumina-cluster.lock python -m pytest tests/security``.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "faults"))

import lumina_stack  # found through the path set just above
import pytest
from lumina_stack import environment, workspace  # noqa: F401  (fixtures)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lumina_stack.print_figures(terminalreporter.write_line)
