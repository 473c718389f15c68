"""Change planning on real git repositories: exactly the affected services are rebuilt."""

from __future__ import annotations

import os
import pathlib
import shutil
import time

from conftest import PlanRunner, commit_all, git, rebuilds, write

from reconciler import discovery, services, settings
from reconciler.cycle import state
from reconciler.inputs import contexts, snapshots, worktree_reading
from reconciler.releasing import targets


def test_backend_source_edit_plans_backend_only(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    write(project, "services/backend/app/main.py", "app = 'backend v2'\n")
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == {"backend"}
    backend = next(s for s in plan["services"] if s["name"] == "backend")  # type: ignore[union-attr]
    assert backend["reasons"] == ["modified services/backend/app/main.py"]
    assert plan["helm_upgrade"] is True


def test_docs_tests_and_dockerignored_files_plan_nothing(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    write(project, "README.md", "# new docs\n")
    write(project, "tests/test_something.py", "def test(): assert True\n")
    write(project, "services/backend/tests/test_app.py", "def test(): assert 1\n")
    write(project, "services/backend/README.md", "ignored by .dockerignore\n")
    write(project, "services/backend/app/__pycache__/main.cpython-313.pyc", "bytecode")
    write(project, "services/frontend/node_modules/left-pad/index.js", "module.exports = 1\n")
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == set()
    assert plan["helm_upgrade"] is False


def test_dockerignore_exception_is_honoured(project: pathlib.Path, plan_json: PlanRunner) -> None:
    write(project, "services/backend/.dockerignore", "docs/**\n!docs/schema.sql\n")
    write(project, "services/backend/docs/notes.txt", "notes\n")
    write(project, "services/backend/docs/schema.sql", "create table t();\n")
    commit_all(project)
    write(project, "services/backend/docs/notes.txt", "more notes\n")
    assert rebuilds(plan_json(project, "--since", "HEAD")) == set()
    write(project, "services/backend/docs/schema.sql", "create table u();\n")
    assert rebuilds(plan_json(project, "--since", "HEAD")) == {"backend"}


def test_dockerfile_change_plans_that_service(project: pathlib.Path, plan_json: PlanRunner) -> None:
    write(project, "services/chatbot/Dockerfile", "FROM python:3.13-slim\nCOPY app /srv\n")
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == {"chatbot"}


def test_rename_delete_mode_and_symlink_changes(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    git(project, "mv", "services/backend/app/models.py", "services/backend/app/schema.py")
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == {"backend"}
    backend = next(s for s in plan["services"] if s["name"] == "backend")  # type: ignore[union-attr]
    assert set(backend["reasons"]) == {
        "added services/backend/app/schema.py",
        "deleted services/backend/app/models.py",
    }
    commit_all(project)

    (project / "services/chatbot/app/main.py").unlink()
    assert rebuilds(plan_json(project, "--since", "HEAD")) == {"chatbot"}
    commit_all(project)

    os.chmod(project / "services/backend/app/main.py", 0o755)
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == {"backend"}
    backend = next(s for s in plan["services"] if s["name"] == "backend")  # type: ignore[union-attr]
    assert backend["reasons"] == ["mode 100644->100755 services/backend/app/main.py"]
    commit_all(project)

    (project / "services/frontend/app/current").symlink_to("page.tsx")
    commit_all(project)
    (project / "services/frontend/app/current").unlink()
    (project / "services/frontend/app/current").symlink_to("other.tsx")
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == {"frontend"}


def test_untracked_file_counts_in_worktree_mode_only(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    write(project, "services/backend/app/new_module.py", "X = 1\n")
    assert rebuilds(plan_json(project, "--since", "HEAD")) == {"backend"}
    # Commit mode reads the tracked branch's committed tree: the untracked file is invisible.
    assert rebuilds(plan_json(project, "--mode", "commit", "--since", "HEAD")) == set()
    commit_all(project, "add module")
    assert rebuilds(plan_json(project, "--mode", "commit", "--since", "HEAD~1")) == {"backend"}


def test_uncommitted_edit_never_leaks_into_commit_mode(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    write(
        project, "services/frontend/app/page.tsx", "export default function Page() { return 1 }\n"
    )
    committed = plan_json(project, "--mode", "commit")
    worktree = plan_json(project, "--mode", "worktree")
    by_name = lambda plan: {s["name"]: s["digest"] for s in plan["services"]}  # noqa: E731
    assert by_name(committed)["frontend"] != by_name(worktree)["frontend"]
    assert by_name(committed)["backend"] == by_name(worktree)["backend"]


def test_digests_are_identical_in_two_clones(
    project: pathlib.Path, plan_json: PlanRunner, tmp_path: pathlib.Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))
    # A different mtime everywhere must not matter: only content, mode and path do.
    for path in clone.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            os.utime(path, (1_000_000, 1_000_000))
    first = plan_json(project)
    second = plan_json(clone)
    digests = lambda plan: {s["name"]: s["digest"] for s in plan["services"]}  # noqa: E731
    assert digests(first) == digests(second)
    assert digests(first) == digests(plan_json(project, "--mode", "commit"))
    assert first["chart"]["digest"] == second["chart"]["digest"]  # type: ignore[index]


def test_chart_only_change_needs_upgrade_without_builds(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    write(project, "helm/lumina-todo/values.yaml", "backend: {replicas: 1}\n")
    plan = plan_json(project, "--since", "HEAD")
    assert rebuilds(plan) == set()
    assert plan["chart"] == {
        "digest": plan["chart"]["digest"],  # type: ignore[index]
        "upgrade": True,
        "reasons": ["modified helm/lumina-todo/values.yaml"],
    }
    assert plan["helm_upgrade"] is True


def test_build_args_change_the_digest(project: pathlib.Path) -> None:
    plugin = services.ServicePlugin(
        name=services.ServiceName("backend"),
        context="services/backend",
        dockerfile="services/backend/Dockerfile",
        image="lumina/backend",
        values_key="backend",
        liveness=services.Probe("/api/health", 8000),
        readiness=services.Probe("/api/ready", 8000),
    )
    source = worktree_reading.WorktreeSource(project)
    plain = contexts.service_inputs(plugin, source)
    with_arg = contexts.service_inputs(
        services.ServicePlugin(**{**plugin.__dict__, "build_args": {"PIP_INDEX": "x"}}), source
    )
    assert plain.digest != with_arg.digest
    assert plain.files == with_arg.files


def test_dockerfile_outside_context_counts(project: pathlib.Path) -> None:
    write(project, "docker/backend.Dockerfile", "FROM python:3.13-slim\n")
    plugin = services.ServicePlugin(
        name=services.ServiceName("backend"),
        context="services/backend/app",
        dockerfile="docker/backend.Dockerfile",
        image="lumina/backend",
        values_key="backend",
        liveness=services.Probe("/api/health", 8000),
        readiness=services.Probe("/api/ready", 8000),
    )
    source = worktree_reading.WorktreeSource(project)
    before = contexts.service_inputs(plugin, source)
    assert "docker/backend.Dockerfile" in before.files
    write(project, "docker/backend.Dockerfile", "FROM python:3.13-slim\nUSER 10001\n")
    assert contexts.service_inputs(plugin, source).digest != before.digest


def test_deployed_state_is_the_default_baseline(
    project: pathlib.Path, plan_json: PlanRunner
) -> None:
    first = plan_json(project)
    assert rebuilds(first) == {"backend", "chatbot", "frontend"}
    assert all("nothing deployed yet" in s["reasons"][0] for s in first["services"])  # type: ignore[union-attr]
    # Record everything as deployed, the way the reconcile loop does after a release.
    config = settings.load_settings(project)
    plugins = discovery.discover_services(project).plugins
    snap = snapshots.take(config, plugins, snapshots.source_for(config))
    state_dir = project / ".lumina"
    names = {plugin.name: targets.image_name(config, plugin) for plugin in plugins}
    deployed = state.State(
        chart_digest=snap.chart_digest,
        revision=1,
        release_inputs=targets.release_inputs(snap.chart_digest, config, plugins),
    )
    for inputs in snap.services:
        deployed.services[inputs.name] = state.DeployedImage(
            digest=inputs.digest, tag=inputs.tag, image=names[inputs.name]
        )
        state.save_manifest(state_dir, inputs.digest, inputs.files)
    state.save_manifest(state_dir, snap.chart_digest, snap.chart_files)
    state.save(state_dir, deployed)

    assert rebuilds(plan_json(project)) == set()
    write(project, "services/backend/app/main.py", "app = 'edited'\n")
    plan = plan_json(project)
    assert rebuilds(plan) == {"backend"}
    backend = next(s for s in plan["services"] if s["name"] == "backend")  # type: ignore[union-attr]
    assert backend["reasons"] == ["modified services/backend/app/main.py"]


def test_stat_cache_notices_same_size_rewrite(project: pathlib.Path, plan_json: PlanRunner) -> None:
    """A same-size rewrite that even restores the old mtime must not hide behind the cache."""
    main = project / "services/backend/app/main.py"
    old = time.time() - 3600
    for path in (project / "services").rglob("*"):
        os.utime(path, (old, old), follow_symlinks=False)
    time.sleep(2.1)  # leave the racy window, so hashes are cached
    first = plan_json(project)
    assert (project / ".lumina/cache/hashes.json").exists()
    main.write_text("app = 'backenX'\n")  # same length as before
    os.utime(main, (old, old))
    second = plan_json(project)
    digest = lambda plan: next(s["digest"] for s in plan["services"] if s["name"] == "backend")  # noqa: E731
    assert digest(first) != digest(second)
    shutil.rmtree(project / ".lumina")
    assert digest(plan_json(project)) == digest(second)
