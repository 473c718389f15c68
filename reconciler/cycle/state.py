"""The daemon's persisted state under ``.lumina/``: what is deployed, written atomically.

Who calls it: the ``plan`` command reads it for its baseline; the reconcile loop reads
it at start and writes it after every cycle. The file is replaced with write-to-temp,
fsync, rename, so a crash at any moment leaves either the old or the new state, never a
torn one. File listings behind each deployed digest are kept beside it so a plan can
name the paths that changed. No secret value is ever part of the state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

from reconciler.cycle import planning
from reconciler.inputs import trees

STATE_FILE = "state.json"
MANIFESTS_DIR = "manifests"


@dataclasses.dataclass(frozen=True)
class DeployedImage:
    digest: str
    tag: str
    image: str


@dataclasses.dataclass
class State:
    services: dict[str, DeployedImage] = dataclasses.field(default_factory=dict)
    chart_digest: str | None = None
    #: chart and settings values together, as recorded in the release
    release_inputs: str | None = None
    revision: int | None = None
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    #: the inputs of the last failed attempt, so the same failure is not retried in a loop
    last_failure: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "services": {name: dataclasses.asdict(image) for name, image in self.services.items()},
            "chart_digest": self.chart_digest,
            "release_inputs": self.release_inputs,
            "revision": self.revision,
            "history": self.history[-20:],
            "last_failure": self.last_failure,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> State:
        return cls(
            services={
                name: DeployedImage(**image) for name, image in data.get("services", {}).items()
            },
            chart_digest=data.get("chart_digest"),
            release_inputs=data.get("release_inputs"),
            revision=data.get("revision"),
            history=list(data.get("history", [])),
            last_failure=data.get("last_failure"),
        )


def write_atomically(path: pathlib.Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load(state_dir: pathlib.Path) -> State:
    try:
        data = json.loads((state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State()
    return State.from_json(data)


def save(state_dir: pathlib.Path, state: State) -> None:
    write_atomically(state_dir / STATE_FILE, json.dumps(state.to_json(), indent=2))


def save_manifest(
    state_dir: pathlib.Path, digest: str, files: Mapping[str, trees.FileEntry]
) -> None:
    """Keep the listing behind ``digest`` (content-addressed, so writing twice is harmless)."""
    path = state_dir / MANIFESTS_DIR / f"{digest}.json"
    if path.exists():
        return
    payload = {name: [entry.mode, entry.oid] for name, entry in files.items()}
    write_atomically(path, json.dumps(payload, separators=(",", ":")))


def load_manifest(state_dir: pathlib.Path, digest: str) -> dict[str, trees.FileEntry] | None:
    try:
        raw = json.loads((state_dir / MANIFESTS_DIR / f"{digest}.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return {name: trees.FileEntry(mode, oid) for name, (mode, oid) in raw.items()}


def baseline(state_dir: pathlib.Path, state: State) -> planning.Baseline:
    """The deployed state as a planning baseline."""
    if not state.services and state.chart_digest is None:
        return planning.EMPTY_BASELINE
    files = {
        name: manifest
        for name, image in state.services.items()
        if (manifest := load_manifest(state_dir, image.digest)) is not None
    }
    chart_files = load_manifest(state_dir, state.chart_digest) if state.chart_digest else None
    return planning.Baseline(
        label="the deployed state",
        digests={name: image.digest for name, image in state.services.items()},
        files=files,
        chart_digest=state.chart_digest,
        chart_files=chart_files,
    )
