"""The daemon stopped mid-cycle, politely (SIGTERM) or not (SIGKILL), never hurts the release.

Each test adopts the live release in a clone, commits a change, starts
``reconciler run --mode commit`` on the clone and signals it at a chosen moment, then
checks the invariants: no revision left ``pending-*``, the state file is whole JSON, at
most one new revision for the change, the next ``once`` converges, and an image built
before the signal is not built again.
"""

from __future__ import annotations

import json
import pathlib
import signal
import time

import lumina_stack
import pytest

from reconciler.releasing import helm as releasing


def _adopt(workspace: pathlib.Path) -> int:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    return lumina_stack.helm_revision()


def _state_is_whole(workspace: pathlib.Path) -> dict[str, object]:
    path = workspace / ".lumina" / "state.json"
    return dict(json.loads(path.read_text()))


@pytest.mark.slow
def test_sigterm_during_helm_upgrade_exits_0_and_leaves_no_pending_release(
    workspace: pathlib.Path,
) -> None:
    before = _adopt(workspace)
    lumina_stack.change_backend(workspace, "deployed by a daemon stopped mid-upgrade")
    process = lumina_stack.daemon(workspace)
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    try:
        log.wait_for(
            lambda line: "built lumina/backend" in line or "reused lumina/backend" in line,
            600,
            "'built lumina/backend'",
        )
        # Helm has applied the new revision: the cycle now waits for its pods. Signalled
        # the moment the daemon says so, the stop lands in that wait (a new backend pod
        # takes seconds to start), not after it.
        log.wait_for(lambda line: "watching the rollout" in line, 120, "'watching the rollout'")
    finally:
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=400)
        log.join()
    output = log.text()
    assert code == 0, output[-4000:]
    assert "abandoning the running cycle" in output, output[-4000:]
    lumina_stack.assert_no_pending_release()
    _state_is_whole(workspace)
    # The signal really came during the rollout wait, before the cycle ended.
    assert "watching the rollout" in output and "cycle 1:" not in output, output[-4000:]
    assert not releasing.helm_writers("lumina-todo", lumina_stack.current().namespace), (
        "a helm outlived the daemon"
    )

    # The next cycle finds the applied revision unverified, verifies it, and records it.
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    assert lumina_stack.last_cycle(workspace)["outcome"] in ("converged", "nothing-to-do")
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    assert lumina_stack.last_cycle(workspace)["outcome"] == "nothing-to-do", output
    lumina_stack.assert_no_pending_release()
    assert lumina_stack.helm_revision() - before <= 3, "one upgrade, at most a rollback and a retry"
    lumina_stack.count("faults survived")


@pytest.mark.slow
def test_sigkill_during_a_build_rebuilds_only_what_was_not_finished(
    workspace: pathlib.Path,
) -> None:
    before = _adopt(workspace)
    lumina_stack.change_backend(workspace, "built before the kill")
    chatbot = workspace / "services/chatbot/app/main.py"
    chatbot.write_text(
        chatbot.read_text() + f"\n# faults: killed while building {time.time_ns()}\n"
    )
    lumina_stack.commit(workspace, "chatbot: built when the daemon is killed")
    # One build at a time, in name order: backend completes, then chatbot is killed.
    process = lumina_stack.daemon(workspace, env={"LUMINA_BUILD_CONCURRENCY": "1"})
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    try:
        log.wait_for(lambda line: "built lumina/backend" in line, 600, "'built lumina/backend'")
        log.wait_for(
            lambda line: "building lumina/chatbot" in line, 120, "'building lumina/chatbot'"
        )
    finally:
        process.kill()
        process.wait(timeout=60)
        log.join()
    assert lumina_stack.helm_revision() == before, "a killed build must not reach Helm"
    lumina_stack.assert_no_pending_release()
    _state_is_whole(workspace)

    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    cycle = lumina_stack.last_cycle(workspace)
    assert cycle["outcome"] == "converged", cycle
    # The backend image, finished before the kill, is not built again. The chatbot's
    # build may have been finished by the Docker engine after its client died: reusing
    # that image is right (a tag is only set on a complete image), building it too.
    assert "backend" in cycle["reused"] and "backend" not in cycle["built"], cycle
    assert sorted(cycle["built"] + cycle["reused"]) == ["backend", "chatbot"], cycle
    assert lumina_stack.helm_revision() == before + 1
    lumina_stack.assert_no_pending_release()
    lumina_stack.count("faults survived")


@pytest.mark.slow
def test_sigkill_during_the_rollout_wait_converges_without_a_second_revision(
    workspace: pathlib.Path,
) -> None:
    """The daemon dies while it waits for the new backend pod.

    Helm applied and returned, so nothing is left running or pending; the next run
    finds a revision it never saw ready, verifies it instead of redeploying, and builds
    nothing again.
    """
    before = _adopt(workspace)
    lumina_stack.change_backend(workspace, "rolled out while the daemon is killed")
    process = lumina_stack.daemon(workspace)
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    try:
        log.wait_for(lambda line: "built lumina/backend" in line, 600, "'built lumina/backend'")
        # Helm has applied the new revision; the daemon now watches the rollout.
        log.wait_for(lambda line: "watching the rollout" in line, 120, "'watching the rollout'")
    finally:
        process.kill()
        process.wait(timeout=60)
        log.join()
    status = lumina_stack.release_status()["info"]["status"]
    assert lumina_stack.helm_revision() == before + 1, "the upgrade was applied once"
    # Helm returned as soon as it applied: nothing pending, no helm left behind.
    assert status == "deployed", status
    assert "cycle 1:" not in log.text(), log.text()[-4000:]
    assert not releasing.helm_writers("lumina-todo", lumina_stack.current().namespace), (
        "a helm outlived the daemon"
    )

    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    cycle = lumina_stack.last_cycle(workspace)
    # The applied revision is verified (its pods watched until ready), nothing is built.
    assert cycle["outcome"] in ("nothing-to-do", "converged"), cycle
    assert "backend" not in cycle["built"], cycle
    assert "unverified" in cycle["states"], cycle
    lumina_stack.assert_no_pending_release()
    assert lumina_stack.helm_revision() == before + 1, "one change, one revision"
    _state_is_whole(workspace)
    lumina_stack.count("faults survived")
