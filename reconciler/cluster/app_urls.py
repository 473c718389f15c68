"""Where the app is: the URL the cluster provider offers, remembered for ``status``.

Who calls it: :mod:`reconciler.cli.wiring` (every command that brings the cluster up
records what the provider said), ``lumina-reconcile cluster up``, ``status`` and
``verify`` (which read it back without asking the provider, so they stay fast and never
start a cluster). The file is ``<state_dir>/cluster.json``, replaced atomically.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from reconciler import atomic_files
from reconciler.cluster import providers

FILE = "cluster.json"


def record(state_dir: pathlib.Path, provider: str, info: providers.ClusterInfo) -> dict[str, str]:
    """Remember which provider serves the app where; returns what was written."""
    document = {
        "provider": provider,
        "context": info.context,
        "node_ip": info.node_ip,
        "app_url": info.app_url,
        "app_url_note": info.app_url_note,
    }
    if recorded(state_dir) != document:
        state_dir.mkdir(parents=True, exist_ok=True)
        atomic_files.write(state_dir / FILE, json.dumps(document, indent=2) + "\n")
    return document


def recorded(state_dir: pathlib.Path) -> dict[str, str] | None:
    """What :func:`record` wrote last; None when nothing (or something unreadable) was."""
    try:
        found: Any = json.loads((state_dir / FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict):
        return None
    return {str(key): str(value) for key, value in found.items()}


def describe(document: dict[str, str] | None) -> str:
    """One line for a terminal: the URL (and its note), or what to do instead."""
    if document is None:
        return "app: not known yet (the cluster has not been brought up from this repository)"
    if document.get("app_url"):
        note = document.get("app_url_note")
        return f"app: {document['app_url']}" + (f" ({note})" if note else "")
    return (
        f"app: no URL from the {document.get('provider')} provider: {document.get('app_url_note')}"
    )
