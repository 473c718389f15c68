"""A helm left running by a killed daemon is found, so the release is not rolled back
under it. Real processes whose argv[0] is ``helm`` stand in for helm (the scan reads
``/proc/*/cmdline`` only, so no cluster is needed to tell them apart)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from reconciler.releasing import helm


@pytest.fixture
def orphan_helm() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        ["helm", "-c", "import time; time.sleep(60)", "upgrade", "shop", "--namespace", "apps"],
        executable=sys.executable,
    )
    time.sleep(0.2)
    yield process
    process.kill()
    process.wait()


def test_a_running_helm_upgrade_of_the_release_is_found(
    orphan_helm: subprocess.Popen[bytes],
) -> None:
    assert helm.helm_writers("shop", "apps") == [orphan_helm.pid]


def test_other_releases_namespaces_and_ended_processes_are_not(
    orphan_helm: subprocess.Popen[bytes],
) -> None:
    assert helm.helm_writers("shop", "other") == []
    assert helm.helm_writers("other", "apps") == []
    orphan_helm.kill()
    orphan_helm.wait()
    assert helm.helm_writers("shop", "apps") == []
