"""Ten thousand file events at once: one plan of the final state, deployed once.

The daemon watches a clone's work tree (worktree mode). In one burst the test writes
10,000 files outside every build context and edits the backend; the kernel's inotify
queue may overflow on the way (then the watcher asks for a full rescan). Either way the
invariant is the same: exactly one cycle after the burst, which builds only the backend
and deploys it as one new revision.
"""

from __future__ import annotations

import pathlib
import re
import signal
import time

import lumina_stack
import pytest

FILES = 10_000


@pytest.mark.slow
def test_a_burst_of_ten_thousand_events_yields_one_plan_and_one_revision(
    workspace: pathlib.Path,
) -> None:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    before = lumina_stack.helm_revision()
    # The burst must be one burst to the debouncer: writing 10,000 files takes longer
    # than its default 5 s cap, and pauses longer than its 0.4 s quiet window, while other
    # modules load both cores (then the docs alone were planned first, a nothing-to-do
    # cycle before the backend's). A 3 s lull still ends it.
    process = lumina_stack.daemon(
        workspace,
        mode="worktree",
        env={"LUMINA_DEBOUNCE_SECONDS": "3", "LUMINA_DEBOUNCE_MAX_SECONDS": "60"},
    )
    log = lumina_stack.LogTail(process)
    lumina_stack.count("faults injected")
    try:
        log.wait_for(lambda line: "cycle 1:" in line, 300, "'cycle 1'")
        seen = len(log.lines)
        burst = workspace / "docs" / "burst"
        burst.mkdir(parents=True)
        for index in range(FILES):
            (burst / f"note-{index:05d}.md").write_text(f"note {index}\n")
        main = workspace / lumina_stack.BACKEND_MAIN
        main.write_text(main.read_text() + f"\n# faults: burst {time.time_ns()}\n")
        log.wait_for(lambda line: "cycle 2:" in line, 900, "'cycle 2' after the burst")
        # Long enough for any straggling event to have started a third cycle.
        time.sleep(8)
        after = "".join(log.lines[seen:])
    finally:
        code = lumina_stack.stop(process, signal.SIGTERM, timeout=300)
        log.join()
    assert code == 0, log.text()[-4000:]
    cycles = re.findall(r"cycle (\d+): (\S+)", after)
    assert cycles == [("2", "converged")], after[-4000:]
    assert lumina_stack.last_cycle(workspace)["built"] == ["backend"]
    assert lumina_stack.helm_revision() == before + 1
    lumina_stack.assert_no_pending_release()
    overflowed = "inotify event queue overflowed" in after
    print(f"burst of {FILES} files: inotify overflow {'yes' if overflowed else 'no'}")
    lumina_stack.count("faults survived")
