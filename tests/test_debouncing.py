"""The debouncer with real asyncio timing and real threads pushing.

Assertions are about counts and contents, never about how fast something happened: the
CI machine is shared, so a window may stretch, but what a batch holds must not change.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from reconciler.inputs import debouncing

QUIET = 0.15


async def no_batch_within(debouncer: debouncing.Debouncer, seconds: float) -> bool:
    try:
        await asyncio.wait_for(debouncer.next_batch(), seconds)
    except TimeoutError:
        return True
    return False


def test_a_burst_from_another_thread_is_one_batch_with_every_path() -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=30)

        def burst() -> None:
            for index in range(5000):
                debouncer.push([f"services/backend/app/f{index}.py"])

        thread = threading.Thread(target=burst)
        thread.start()
        batch = await debouncer.next_batch()
        thread.join()
        assert batch.count == 5000
        assert len(batch.paths) == 5000
        assert "services/backend/app/f4999.py" in batch.paths
        assert not batch.rescan
        assert batch.first_at <= batch.last_at
        assert await no_batch_within(debouncer, QUIET * 4)

    asyncio.run(scenario())


def test_events_separated_by_more_than_the_quiet_window_are_two_batches() -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=30)
        debouncer.push(["a"])
        debouncer.push(["b"])
        first = await debouncer.next_batch()
        debouncer.push(["c"])
        second = await debouncer.next_batch()
        assert (first.paths, first.count) == (frozenset({"a", "b"}), 2)
        assert (second.paths, second.count) == (frozenset({"c"}), 1)

    asyncio.run(scenario())


def test_a_never_ending_trickle_is_cut_at_the_maximum_delay_and_nothing_is_lost() -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=0.3, max_delay=0.6)
        stop = threading.Event()
        pushed: list[str] = []

        def trickle() -> None:
            # Closer together than the quiet window: only max_delay can end a batch.
            while not stop.is_set():
                path = f"log/{len(pushed)}"
                pushed.append(path)
                debouncer.push([path])
                time.sleep(0.02)

        thread = threading.Thread(target=trickle)
        thread.start()
        # Without the maximum delay these would wait for ever: the guard turns that into a failure.
        batches = [await asyncio.wait_for(debouncer.next_batch(), 20) for _ in range(3)]
        stop.set()
        thread.join()
        await asyncio.sleep(0)  # let the last pushes reach the loop
        if debouncer.pending:
            batches.append(await debouncer.next_batch())
        assert all(batch.count > 0 for batch in batches)
        seen = [path for batch in batches for path in batch.paths]
        assert sorted(seen) == sorted(pushed)
        assert sum(batch.count for batch in batches) == len(pushed)

    asyncio.run(scenario())


def test_events_arriving_while_the_consumer_is_busy_form_the_next_batch() -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=30)
        debouncer.push(["first"])
        first = await debouncer.next_batch()
        # The consumer now runs a long cycle; another thread keeps saving files.
        pusher = threading.Thread(target=lambda: debouncer.push(["during-cycle"]))
        pusher.start()
        pusher.join()
        await asyncio.sleep(QUIET * 3)
        second = await debouncer.next_batch()
        assert first.paths == frozenset({"first"})
        assert second.paths == frozenset({"during-cycle"})
        assert second.count == 1

    asyncio.run(scenario())


def test_rescan_sticks_and_the_newest_commit_wins_within_a_batch() -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=QUIET, max_delay=30)
        debouncer.push(commit="1" * 40)
        debouncer.push(rescan=True)
        debouncer.push(["x"], commit="2" * 40)
        debouncer.push(["y"])
        batch = await debouncer.next_batch()
        assert batch.rescan
        assert batch.commit == "2" * 40
        assert batch.paths == frozenset({"x", "y"})
        debouncer.push(["z"])
        after = await debouncer.next_batch()
        assert not after.rescan
        assert after.commit is None

    asyncio.run(scenario())


def test_cancelling_a_wait_keeps_the_collected_events() -> None:
    async def scenario() -> None:
        debouncer = debouncing.Debouncer(quiet=5, max_delay=30)
        debouncer.push(["kept"])
        assert await no_batch_within(debouncer, 0.1)  # cancels next_batch mid-window
        debouncer.quiet = QUIET
        batch = await debouncer.next_batch()
        assert batch.paths == frozenset({"kept"})

    asyncio.run(scenario())


def test_pushing_after_the_loop_closed_is_harmless() -> None:
    async def make() -> debouncing.Debouncer:
        return debouncing.Debouncer(quiet=QUIET, max_delay=1)

    debouncer = asyncio.run(make())
    debouncer.push(["late"])  # a watchdog thread still running during shutdown


@pytest.mark.parametrize(("quiet", "max_delay"), [(0, 1), (-1, 1), (2, 1)])
def test_an_impossible_window_is_refused(quiet: float, max_delay: float) -> None:
    async def make() -> None:
        debouncing.Debouncer(quiet=quiet, max_delay=max_delay)

    with pytest.raises(ValueError, match="quiet"):
        asyncio.run(make())
