"""A plugin that fails to import blocks every cycle instead of being left out of it.

Left out, its service was still in the chart, and the next upgrade deployed it at the
chart's default tag ``dev``. The plugin's entry point is a real one naming a module that
does not exist; the toolbox has no cluster adapters (``None``), so a cycle that went on
to plan or deploy would crash on them instead of failing with the plugin's error.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import pathlib

import fakes

from reconciler import discovery, settings
from reconciler.cycle import outcomes, reconciling


def test_a_plugin_that_fails_to_import_fails_the_cycle_naming_it(project: pathlib.Path) -> None:
    installed = importlib.metadata.entry_points(group=discovery.SERVICE_GROUP)
    broken = importlib.metadata.EntryPoint(
        name="chatbot", value="no_such_lumina_plugin:plugin", group=discovery.SERVICE_GROUP
    )
    found = discovery.discover_services(
        project, entry_points=lambda: [*(ep for ep in installed if ep.name != "chatbot"), broken]
    )
    assert "chatbot" not in {plugin.name for plugin in found.plugins}
    config = settings.load_settings(project)
    fake = fakes.toolbox(config, found.plugins, blocked_by=found.unloadable)
    box = fake.box
    result = asyncio.run(reconciling.run_cycle(box))
    assert result.outcome is outcomes.Outcome.BLOCKED, result
    assert "plugin 'chatbot'" in result.message
    assert "ModuleNotFoundError" in result.message and "no_such_lumina_plugin" in result.message
    assert box.runtime.counters["helm_upgrades"] == 0 and box.runtime.counters["docker_builds"] == 0
