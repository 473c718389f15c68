"""Plugin discovery through the ``lumina.plugins`` entry-point group, with a real
third-party distribution built and pip-installed by the test."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest
from conftest import rebuilds, write

from reconciler import discovery, errors, services

THIRD_PARTY_MODULE = textwrap.dedent(
    """
    from reconciler import services

    def _plugin(name, context, dockerfile):
        return services.ServicePlugin(
            name=services.ServiceName(name),
            context=context,
            dockerfile=dockerfile,
            image=f"acme/{name}",
            values_key=name,
            liveness=services.Probe("/healthz", 9000),
            readiness=services.Probe("/healthz", 9000),
        )

    worker = _plugin("worker", "services/worker", "services/worker/Dockerfile")
    escapee = _plugin("escapee", "../outside", "../outside/Dockerfile")
    impostor = _plugin("backend", "services/worker", "services/worker/Dockerfile")
    ghost = _plugin("ghost", "services/worker", "services/worker/Dockerfile.missing")
    """
)

BROKEN_MODULE = "raise RuntimeError('this plugin is broken on purpose')\n"


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A real distribution, ``acme-lumina-plugins``, pip-installed into its own site dir."""
    source = tmp_path_factory.mktemp("acme-dist")
    (source / "acme_lumina.py").write_text(THIRD_PARTY_MODULE)
    (source / "acme_broken.py").write_text(BROKEN_MODULE)
    (source / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "acme-lumina-plugins"
            version = "1.0.0"

            [tool.setuptools]
            py-modules = ["acme_lumina", "acme_broken"]

            [project.entry-points."lumina.plugins"]
            worker = "acme_lumina:worker"
            escapee = "acme_lumina:escapee"
            impostor = "acme_lumina:impostor"
            ghost = "acme_lumina:ghost"
            broken = "acme_broken:plugin"
            """
        )
    )
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
    )
    return site


def test_third_party_plugin_is_planned_and_broken_ones_are_skipped(
    project: pathlib.Path, third_party_site: pathlib.Path
) -> None:
    write(project, "services/worker/Dockerfile", "FROM python:3.13-slim\n")
    write(project, "services/worker/main.py", "print('work')\n")
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--json", "--repo", str(project)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(third_party_site)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert rebuilds(plan) == {"backend", "chatbot", "frontend", "worker"}
    warnings = result.stderr
    assert "plugin 'broken'" in warnings and "this plugin is broken on purpose" in warnings
    assert "plugin 'escapee'" in warnings and "outside the repository" in warnings
    assert "plugin 'ghost'" in warnings and "Dockerfile.missing" in warnings
    assert "plugin 'backend'" in warnings and "already taken" in warnings


def test_built_in_plugins_are_found(project: pathlib.Path) -> None:
    found = discovery.discover_services(project)
    assert [plugin.name for plugin in found.plugins] == ["backend", "chatbot", "frontend"]
    assert found.problems == ()
    backend = found.by_name()[services.ServiceName("backend")]
    assert backend.readiness == services.Probe("/api/ready", 8000)
    assert {spec.key for spec in backend.secrets} == {"JWT_SECRET_KEY", "SMTP_PASSWORD"}


def test_validate_names_the_problem(project: pathlib.Path) -> None:
    plugin = services.ServicePlugin(
        name=services.ServiceName("Bad_Name"),
        context="services/backend",
        dockerfile="services/backend/Dockerfile",
        image="x",
        values_key="x",
        liveness=services.Probe("/", 1),
        readiness=services.Probe("/", 1),
    )
    with pytest.raises(errors.PluginError, match=r"Bad_Name.*lowercase"):
        discovery.validate(plugin, project)
