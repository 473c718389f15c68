"""#5 Planning at scale: a 50,000-file build context, planned cold, warm and after one edit.

What it runs: the reconciler's own planning path — ``contexts.service_inputs`` over a
``WorktreeSource`` with an on-disk ``HashCache``, then ``planning.plan`` against the
previous inputs, then ``HashCache.save`` — exactly what the ``plan`` phase of a reconcile
cycle does, on a temp git repository whose one service context holds 50,000 small files.
The re-plan after an edit is measured twice: as the daemon does it (its ``ListingMemo``
told the edited path, as its watcher would) and as a one-shot command does (a full walk).
The service is a synthetic ``ServicePlugin`` (a real plugin, just not one of ours).
"""

from __future__ import annotations

import cProfile
import pathlib
import pstats
import time

from bench import measuring
from reconciler import services
from reconciler.cycle import planning
from reconciler.inputs import contexts, git_reading, worktree_reading

NAME = "planning"
TITLE = "Planning at scale (50,000-file context)"
FILES = 50_000
TARGET_EDIT = 0.3

PLUGIN = services.ServicePlugin(
    name=services.ServiceName("big"),
    context="big",
    dockerfile="big/Dockerfile",
    image="bench/big",
    values_key="big",
    liveness=services.Probe("/health", 8000),
    readiness=services.Probe("/health", 8000),
)


def _make_repository(root: pathlib.Path) -> list[pathlib.Path]:
    measuring.init_repository(root)
    context = root / "big"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY . /app\n", encoding="utf-8")
    (context / ".dockerignore").write_text("**/__pycache__\n*.pyc\n", encoding="utf-8")
    files = measuring.write_files(context / "src", FILES)
    measuring.git(root, "add", "-A")
    measuring.git(root, "commit", "-q", "-m", "50,000 files")
    return files


def _plan_once(
    source: worktree_reading.WorktreeSource, baseline: planning.Baseline
) -> tuple[contexts.ServiceInputs, planning.Plan]:
    """One plan phase; ``source.memo`` (when set) stands for the daemon's watcher."""
    inputs = contexts.service_inputs(PLUGIN, source)
    result = planning.plan([inputs], "", {}, baseline)
    source.cache.save()
    return inputs, result


def _baseline(inputs: contexts.ServiceInputs) -> planning.Baseline:
    return planning.Baseline(
        label="the previous plan",
        digests={inputs.name: inputs.digest},
        files={inputs.name: inputs.files},
        chart_digest="",
        chart_files={},
    )


#: (module file suffix, function) -> label, for the profile breakdown of one re-plan
_PARTS = {
    ("reconciler/inputs/ignoring.py", "excluded"): ".dockerignore matching",
    ("reconciler/inputs/ignoring.py", "prune"): ".dockerignore matching",
    ("~", "<method 'stat' of 'posix.DirEntry' objects>"): "stat",
    ("reconciler/inputs/digests.py", "service_digest"): "digest",
    ("reconciler/cycle/planning.py", "changed_paths"): "diff for reasons",
    ("reconciler/inputs/worktree_reading.py", "save"): "cache save",
}


def _profile_edit(
    source: worktree_reading.WorktreeSource,
    files: list[pathlib.Path],
    inputs: contexts.ServiceInputs,
) -> dict[str, float]:
    """Shares of one re-plan's time by part, from cProfile's cumulative times."""
    edited = files[-1]
    edited.write_text(edited.read_text(encoding="utf-8") + "# profiled\n", encoding="utf-8")
    if source.memo is not None:
        source.memo.touched([edited.relative_to(source.repo).as_posix()])
    profile = cProfile.Profile()
    profile.enable()
    with measuring.stopwatch() as elapsed:
        _plan_once(source, _baseline(inputs))
    profile.disable()
    total = elapsed()
    shares: dict[str, float] = {}
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        for (suffix, name), label in _PARTS.items():
            if function == name and filename.endswith(suffix):
                shares[label] = shares.get(label, 0.0) + cumulative / total
    shares["other"] = max(0.0, 1.0 - sum(shares.values()))
    return dict(sorted(shares.items(), key=lambda item: -item[1]))


def run(ctx: measuring.Context) -> measuring.GroupResult:
    result = measuring.GroupResult(NAME, TITLE)
    root = ctx.work / "planning-repo"
    ctx.say(f"planning: writing {FILES:,} files into a temp git repository")
    with measuring.stopwatch() as elapsed:
        files = _make_repository(root)
    result.raw["setup_seconds"] = elapsed()
    # Files younger than 2 s are never cached (the racy-git rule); let them age, as any
    # real checkout has.
    time.sleep(2.2)
    cache_path = root / ".lumina" / "cache" / "hashes.json"

    cold: list[float] = []
    for _ in range(ctx.times(3)):
        cache_path.unlink(missing_ok=True)
        source = worktree_reading.WorktreeSource(root, worktree_reading.HashCache(cache_path))
        with measuring.stopwatch() as elapsed:
            inputs, _plan = _plan_once(source, planning.EMPTY_BASELINE)
        cold.append(elapsed())
    if len(inputs.files) != FILES + 2:
        raise RuntimeError(
            f"expected {FILES + 2} files in the context, planned {len(inputs.files)}"
        )

    restart: list[float] = []
    for _ in range(ctx.times(3)):
        with measuring.stopwatch() as elapsed:
            source = worktree_reading.WorktreeSource(root, worktree_reading.HashCache(cache_path))
            inputs, plan = _plan_once(source, _baseline(inputs))
        restart.append(elapsed())

    warm: list[float] = []
    rebuilds_when_unchanged = 0
    for _ in range(ctx.times(10)):
        with measuring.stopwatch() as elapsed:
            inputs, plan = _plan_once(source, _baseline(inputs))
        warm.append(elapsed())
        rebuilds_when_unchanged += len(plan.rebuilds)

    def edits(
        source: worktree_reading.WorktreeSource, offset: int
    ) -> tuple[list[float], int, contexts.ServiceInputs]:
        nonlocal inputs
        times: list[float] = []
        noticed = 0
        for index in range(ctx.times(10)):
            edited = files[(offset + index * 4_999) % len(files)]
            edited.write_text(edited.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
            relative = edited.relative_to(root).as_posix()
            before = _baseline(inputs)
            with measuring.stopwatch() as elapsed:
                if source.memo is not None:
                    source.memo.touched([relative])  # what the watcher's batch carries
                inputs, plan = _plan_once(source, before)
            times.append(elapsed())
            if plan.rebuilds and any(relative in reason for reason in plan.services[0].reasons):
                noticed += 1
        return times, noticed, inputs

    walked, walked_noticed, inputs = edits(source, 7)
    daemon_source = worktree_reading.WorktreeSource(
        root, worktree_reading.HashCache(cache_path), worktree_reading.ListingMemo()
    )
    inputs, _plan = _plan_once(daemon_source, _baseline(inputs))  # the daemon's first cycle
    edit, noticed, inputs = edits(daemon_source, 0)

    breakdown = _profile_edit(daemon_source, files, inputs)

    commit: list[float] = []
    for _ in range(ctx.times(3)):
        with measuring.stopwatch() as elapsed:
            repository = git_reading.open_repository(root)
            contexts.service_inputs(PLUGIN, git_reading.CommitSource(repository, "main"))
        commit.append(elapsed())

    result.raw.update(
        files=FILES,
        cold=cold,
        restart=restart,
        warm=warm,
        edit=edit,
        edit_full_walk=walked,
        commit_mode=commit,
        edits_noticed=noticed,
        rebuilds_when_unchanged=rebuilds_when_unchanged,
        cache_bytes=cache_path.stat().st_size,
        edit_breakdown=breakdown,
    )
    n = len(edit)
    result.rows = [
        measuring.Row("plan, cold (empty hash cache)", measuring.spread(cold)),
        measuring.Row("plan after a restart (cache from disk)", measuring.spread(restart)),
        measuring.Row(
            "plan, warm, nothing changed",
            f"{measuring.spread(warm)}; {rebuilds_when_unchanged} rebuilds",
            "0 rebuilds",
            rebuilds_when_unchanged == 0,
        ),
        measuring.Row(
            "re-plan after a one-file edit (daemon: watcher's paths)",
            f"{measuring.spread(edit)}; edit named in {noticed}/{n} plans",
            f"< {measuring.seconds(TARGET_EDIT)}",
            measuring.median(edit) < TARGET_EDIT and noticed == n,
        ),
        measuring.Row(
            "re-plan after a one-file edit (one-shot: full walk)",
            f"{measuring.spread(walked)}; edit named in {walked_noticed}/{len(walked)} plans",
        ),
        measuring.Row(
            "where a re-plan's time goes (profiled)",
            ", ".join(f"{name} {share:.0%}" for name, share in breakdown.items()),
        ),
        measuring.Row("plan in commit mode (git tree, cold)", measuring.spread(commit)),
    ]
    return result
