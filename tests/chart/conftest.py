"""Fixtures for the chart tests: a real helm binary and rendered manifests.

Helm comes from tools/install-helm.sh (built from the Go module proxy and
cached), so these tests never depend on whatever helm happens to be on PATH.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "lumina-todo"
OVERRIDES = Path(__file__).resolve().parent / "values-overrides.yaml"
RELEASE = "lumina"
NAMESPACE = "lumina"

Manifest = dict[str, Any]
HelmRun = Callable[..., subprocess.CompletedProcess[str]]
Render = Callable[..., "Manifests"]


@pytest.fixture(scope="session")
def chart() -> Path:
    """The umbrella chart's directory."""
    return CHART


@pytest.fixture(scope="session")
def overrides() -> Path:
    """A values file with realistic overrides of every service."""
    return OVERRIDES


@pytest.fixture(scope="session")
def helm_binary() -> Path:
    """Path of the helm binary installed (or found cached) by tools/install-helm.sh."""
    script = REPO / "tools" / "install-helm.sh"
    try:
        result = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=1800, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"helm is required and {script} could not run: {error}")
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        pytest.fail(
            f"helm is required but {script} failed (exit {result.returncode}):\n"
            f"{result.stderr[-3000:]}"
        )
    helm = Path(lines[-1]) / "helm"
    if not helm.is_file():
        pytest.fail(
            f"helm is required but {script} printed {lines[-1]!r}, which holds no helm binary"
        )
    return helm


@pytest.fixture(scope="session")
def helm(helm_binary: Path) -> HelmRun:
    """Run helm with arguments; returns the finished process (never raises on failure)."""

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(helm_binary), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


class Manifests(list[dict[str, Any]]):
    """The objects of one `helm template` run, with look-ups the tests share."""

    @classmethod
    def parse(cls, text: str) -> Manifests:
        return cls(doc for doc in yaml.safe_load_all(text) if doc)

    def kinds_and_names(self) -> set[tuple[str, str]]:
        return {(m["kind"], m["metadata"]["name"]) for m in self}

    def of_kind(self, kind: str) -> list[Manifest]:
        return [m for m in self if m["kind"] == kind]

    def get(self, kind: str, name: str) -> Manifest:
        """The one object of this kind and name, or a failure listing what was rendered."""
        matches = [m for m in self.of_kind(kind) if m["metadata"]["name"] == name]
        assert len(matches) == 1, (
            f"expected one {kind}/{name}, rendered: {sorted(self.kinds_and_names())}"
        )
        return matches[0]

    def pod_specs(self) -> Iterator[tuple[str, Manifest]]:
        """(kind/name, pod spec) of every Deployment and bare Pod (the helm test hooks)."""
        for manifest in self:
            if manifest["kind"] == "Deployment":
                yield (
                    f"Deployment/{manifest['metadata']['name']}",
                    manifest["spec"]["template"]["spec"],
                )
            elif manifest["kind"] == "Pod":
                yield f"Pod/{manifest['metadata']['name']}", manifest["spec"]

    def container(self, deployment: str) -> Manifest:
        """The single container of a Deployment."""
        containers: list[Manifest] = self.get("Deployment", deployment)["spec"]["template"]["spec"][
            "containers"
        ]
        (container,) = containers
        return container


@pytest.fixture(scope="session")
def render(helm: HelmRun) -> Render:
    """Render the umbrella chart as release "lumina" in namespace "lumina"; fail on error."""

    def run(*args: str | Path) -> Manifests:
        result = helm("template", RELEASE, CHART, "--namespace", NAMESPACE, *args)
        assert result.returncode == 0, (
            f"helm template {' '.join(map(str, args))} failed:\n{result.stderr}"
        )
        return Manifests.parse(result.stdout)

    return run


@pytest.fixture(scope="session")
def defaults(render: Render) -> Manifests:
    """Manifests rendered with the committed default values."""
    return render()


@pytest.fixture(scope="session")
def overridden(render: Render) -> Manifests:
    """Manifests rendered with realistic overrides (a hand install with secrets and SMTP)."""
    return render("--values", OVERRIDES)
