"""The daemon's persisted state under ``.lumina/``: what is deployed, written atomically.

Who calls it: the ``plan`` and ``status`` commands read it; the cycle's observe step
reads it (setting a damaged file aside), its record and conclude steps write it. The
file is replaced with write-to-temp, fsync, rename, so a crash at any moment leaves
either the old or the new state, never a torn one. File listings behind each deployed
digest are kept beside it so a plan can name the paths that changed. No secret value
is ever part of the state.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import pydantic

from reconciler import atomic_files
from reconciler.cycle import planning
from reconciler.inputs import trees

STATE_FILE = "state.json"
MANIFESTS_DIR = "manifests"
HISTORY_KEPT = 20

log = logging.getLogger("lumina.state")


class DeployedImage(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    digest: str
    tag: str
    image: str


class State(pydantic.BaseModel):
    """What the reconciler last saw deployed. Validated on load: a file that does not
    fit this shape is damaged, never half-trusted."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True)

    services: dict[str, DeployedImage] = pydantic.Field(default_factory=dict)
    chart_digest: str | None = None
    #: chart and settings values together, as recorded in the release
    release_inputs: str | None = None
    revision: int | None = None
    history: list[dict[str, Any]] = pydantic.Field(default_factory=list)
    #: the inputs of the last failed attempt, so the same failure is not retried in a loop
    last_failure: dict[str, Any] | None = None
    #: per Secret name, the fingerprint of its locally given values when last deployed
    secret_fingerprints: dict[str, str] = pydantic.Field(default_factory=dict)
    #: data reverts begun and not yet finished: service -> {"backup", "image"}. Written
    #: before a service is scaled to none, cleared when its revert ends: a daemon killed
    #: in between finishes the revert at its next start, before anything else.
    reverts_pending: dict[str, dict[str, str]] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("history", mode="before")
    @classmethod
    def _entries_with_outcome_and_message(cls, value: Any) -> Any:
        """History is what ``status`` prints: an entry without its outcome or message
        (a hand edit, an older writer) is dropped, not left to fail a reader."""
        if not isinstance(value, list):
            return value
        return [
            entry
            for entry in value
            if isinstance(entry, dict)
            and isinstance(entry.get("outcome"), str)
            and isinstance(entry.get("message"), str)
        ]

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["history"] = data["history"][-HISTORY_KEPT:]
        return data


@dataclasses.dataclass(frozen=True)
class Loaded:
    """The state read from disk, and what went wrong reading it (empty when nothing)."""

    state: State
    problem: str = ""


def _damage(path: pathlib.Path) -> str:
    """Why ``path`` is not a state file, or "" when it is one (or absent)."""
    try:
        State.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return ""
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or "the document"
        return f"not a state file ({where}: {first.get('msg', 'invalid')})"
    return ""


def _set_aside(path: pathlib.Path) -> pathlib.Path:
    """Rename a damaged file to ``<name>.damaged-<UTC stamp>``, kept as evidence."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    number = 1
    while kept.exists():  # two damaged files in one second: keep both
        number += 1
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{number}")
    os.replace(path, kept)
    return kept


def load(state_dir: pathlib.Path, *, set_aside: bool = False) -> Loaded:
    """The saved state; a damaged file gives an empty state and says why.

    With ``set_aside`` (the cycle, which rebuilds state from the live release) the
    damaged file is renamed, kept for whoever wants to look at it, so that the next
    save does not overwrite the evidence and the next load is clean.
    """
    path = state_dir / STATE_FILE
    problem = _damage(path)
    if not problem:
        try:
            return Loaded(State.model_validate_json(path.read_bytes()))
        except FileNotFoundError:
            return Loaded(State())
    if not set_aside:
        return Loaded(
            State(),
            f"the state file {path} is {problem}; the next cycle sets it aside and "
            "rebuilds state from the live release",
        )
    try:
        kept = _set_aside(path)
    except OSError as exc:
        return Loaded(State(), f"the state file {path} is {problem} and could not be moved ({exc})")
    return Loaded(
        State(),
        f"the state file was {problem}; kept it as {kept.name} and rebuilt state "
        "from the live release",
    )


def save(state_dir: pathlib.Path, state: State) -> None:
    atomic_files.write(state_dir / STATE_FILE, json.dumps(state.to_json(), indent=2))


def save_manifest(
    state_dir: pathlib.Path, digest: str, files: Mapping[str, trees.FileEntry]
) -> None:
    """Keep the listing behind ``digest`` (content-addressed, so writing twice is harmless)."""
    path = state_dir / MANIFESTS_DIR / f"{digest}.json"
    if path.exists():
        return
    payload = {name: [entry.mode, entry.oid] for name, entry in files.items()}
    atomic_files.write(path, json.dumps(payload, separators=(",", ":")))


class Directory:
    """The state store port's real adapter: ``state.json`` and the manifests in a
    directory, each write atomic (:mod:`reconciler.atomic_files`)."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def load(self, *, set_aside: bool = False) -> Loaded:
        return load(self.path, set_aside=set_aside)

    def save(self, state: State) -> None:
        save(self.path, state)

    def save_manifest(self, digest: str, files: Mapping[str, trees.FileEntry]) -> None:
        save_manifest(self.path, digest, files)


def _manifest_problem(raw: object) -> str:
    """What keeps ``raw`` from being a listing ({path: [mode, oid]}), or ""."""
    if not isinstance(raw, dict):
        return f"a JSON {type(raw).__name__}, not an object of path -> [mode, oid]"
    for name, entry in raw.items():
        if not (
            isinstance(entry, list) and len(entry) == 2 and all(isinstance(v, str) for v in entry)
        ):
            return f"entry {name!r} is {json.dumps(entry)[:80]}, not [mode, oid] (two strings)"
    return ""


def load_manifest(state_dir: pathlib.Path, digest: str) -> dict[str, trees.FileEntry] | None:
    """The listing behind ``digest``, or None when none is kept (a plan then names no
    paths for it). A damaged one is set aside and warned about, never half-read: it is a
    cache, so the next deployment of that digest writes it anew."""
    path = state_dir / MANIFESTS_DIR / f"{digest}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        problem = _manifest_problem(raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        problem = f"not JSON ({exc})"
    if problem:
        try:
            kept = _set_aside(path)
        except OSError as exc:
            log.warning("the file listing %s is %s and could not be moved (%s)", path, problem, exc)
        else:
            log.warning(
                "the file listing %s was %s; kept it as %s and planned without it",
                path,
                problem,
                kept.name,
            )
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
