"""The state file: validated on load; a damaged one is reported, set aside, never fatal."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from conftest import PlanRunner

from reconciler.cycle import state
from reconciler.inputs import trees

TRUNCATED = '{"services": {"backend": {"digest": "abc", "tag": "ab'
WRONG_SHAPE = json.dumps({"services": {"backend": {"digest": 1}}, "revision": "three"})


@pytest.mark.parametrize("damage", [TRUNCATED, WRONG_SHAPE, "\x00\x01binary"])
def test_a_damaged_file_is_set_aside_and_kept(tmp_path: pathlib.Path, damage: str) -> None:
    (tmp_path / state.STATE_FILE).write_text(damage)
    loaded = state.load(tmp_path, set_aside=True)
    assert loaded.state == state.State()
    kept = list(tmp_path.glob(f"{state.STATE_FILE}.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text() == damage
    assert kept[0].name in loaded.problem
    assert not (tmp_path / state.STATE_FILE).exists()
    assert state.load(tmp_path, set_aside=True).problem == ""


def test_reading_without_set_aside_leaves_the_file(tmp_path: pathlib.Path) -> None:
    (tmp_path / state.STATE_FILE).write_text(TRUNCATED)
    loaded = state.load(tmp_path)
    assert "next cycle sets it aside" in loaded.problem
    assert (tmp_path / state.STATE_FILE).read_text() == TRUNCATED


def test_a_saved_state_loads_back_equal(tmp_path: pathlib.Path) -> None:
    saved = state.State(
        services={"backend": state.DeployedImage(digest="d" * 64, tag="d" * 24, image="b")},
        revision=7,
        release_inputs="x",
        history=[{"outcome": "converged", "message": "revision 7"}] * 30,
    )
    state.save(tmp_path, saved)
    loaded = state.load(tmp_path)
    assert loaded.problem == ""
    assert loaded.state.revision == 7 and loaded.state.services == saved.services
    assert len(loaded.state.history) == state.HISTORY_KEPT


def test_plan_and_status_explain_a_damaged_file_without_a_traceback(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    (project / ".lumina").mkdir()
    (project / ".lumina" / state.STATE_FILE).write_text(TRUNCATED)
    plan = plan_json(project)
    assert plan["decision"]["state"] == "images-missing"  # type: ignore[index]
    for command in (["plan"], ["status"], ["status", "--json"]):
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *command, "--repo", str(project)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        said = " ".join((done.stderr + done.stdout).split())
        assert "state file" in said and "not a state file" in said, said
    assert (project / ".lumina" / state.STATE_FILE).read_text() == TRUNCATED


def test_a_history_entry_without_its_message_does_not_crash_status(
    project: pathlib.Path,
) -> None:
    """Issue 23: ``status`` failed with a KeyError on an entry without ``message``."""
    (project / ".lumina").mkdir()
    document = state.State(revision=3).to_json()
    document["history"] = [
        {"outcome": "converged", "message": "revision 3"},
        {"outcome": "converged"},
        "not an entry",
    ]
    (project / ".lumina" / state.STATE_FILE).write_text(json.dumps(document))
    assert [entry["message"] for entry in state.load(project / ".lumina").state.history] == [
        "revision 3"
    ]
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "status", "--repo", str(project)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "last cycle: converged — revision 3" in done.stdout


def test_two_damaged_files_in_one_second_are_both_kept(tmp_path: pathlib.Path) -> None:
    """Issue 23: the second set-aside copy overwrote the first (one name per second)."""
    for damage in (TRUNCATED, "[1, 2, 3]"):
        (tmp_path / state.STATE_FILE).write_text(damage)
        assert state.load(tmp_path, set_aside=True).problem
    kept = sorted(path.read_text() for path in tmp_path.glob(f"{state.STATE_FILE}.damaged-*"))
    assert kept == sorted([TRUNCATED, "[1, 2, 3]"])


@pytest.mark.parametrize(
    "content",
    ['["a", "b"]', '{"app.py": "100644"}', '{"app.py": ["100644", 7]}', '{"app.py": ["x"]}'],
)
def test_a_file_listing_of_valid_json_in_the_wrong_shape_is_set_aside_not_a_crash(
    tmp_path: pathlib.Path, content: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 23: such a listing crashed ``plan``, and the daemon retried it forever."""
    good = {"app.py": trees.FileEntry("100644", "a" * 40)}
    state.save_manifest(tmp_path, "good", good)
    manifests = tmp_path / state.MANIFESTS_DIR
    (manifests / "bad.json").write_text(content, encoding="utf-8")
    assert state.load_manifest(tmp_path, "bad") is None
    assert not (manifests / "bad.json").exists()
    kept = list(manifests.glob("bad.json.damaged-*"))
    assert len(kept) == 1 and kept[0].read_text(encoding="utf-8") == content
    assert any(str(manifests / "bad.json") in r.getMessage() for r in caplog.records)
    # The next read is clean (nothing left to loop on) and the good listing is untouched.
    assert state.load_manifest(tmp_path, "bad") is None
    assert state.load_manifest(tmp_path, "good") == good
