"""How many password hashes may run at once, and what a request beyond that gets.

One argon2id hash holds ``memory_cost`` KiB for its whole run (19 MiB here, see
``security``). Unbounded, a burst of sign-ins multiplies that until the pod is
OOM-killed; a semaphore alone is not enough either, because glibc keeps the freed
block in the arena of every thread that ever hashed (one arena per thread, up to
8 per core), so 40 threadpool threads kept 16 x 19 MiB even with 4 hashes at a time.

So hashes run only on the gate's own threads, ``slots`` of them:

    slots = floor(share x memory limit / cost of one hash)

which bounds their memory, the retained blocks included, to ``share`` of the limit.
The memory limit is the smallest of ``MEMORY_LIMIT_BYTES`` (the chart passes the
container's ``limits.memory`` through the downward API), the cgroup's own limit (v2
``memory.max``, else v1 ``memory.limit_in_bytes``) and the machine's RAM.

Requests beyond the slots wait in a FIFO queue of ``queue`` places, each for at most
``max_wait`` seconds; past the queue, or when the recent pace of hashes says the wait
would be longer, they get :class:`Overloaded` (a 503 with ``Retry-After``) at once,
and one that waited longer all the same gets it when its turn comes, unhashed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: bytes of one hash beyond argon2's own blocks: its thread's stack and bookkeeping
_HASH_OVERHEAD = 1024 * 1024
#: more threads than this would only add context switches: hashing is CPU-bound
MAX_SLOTS = 32
#: a v1 cgroup without a limit reports about 2**63 rounded to a page
_UNLIMITED = 1 << 60

CGROUP_V2_LIMIT = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")


class Overloaded(Exception):
    """Every hash slot is busy and the queue is full (or the wait was too long)."""

    status_code = 503

    def __init__(self, retry_after: int, why: str) -> None:
        super().__init__(why)
        self.retry_after = retry_after
        self.detail = (
            f"The server is busy checking other passwords ({why}); try again in {retry_after} s."
        )


def _read_limit(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text.isdigit():  # "max" in v2: no limit
        return None
    value = int(text)
    return value if 0 < value < _UNLIMITED else None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_limit(
    configured: int | None,
    *,
    v2: Path = CGROUP_V2_LIMIT,
    v1: Path = CGROUP_V1_LIMIT,
) -> tuple[int, str]:
    """The memory this process may use, in bytes, and where that figure comes from."""
    found: list[tuple[int, str]] = []
    if configured:
        found.append((configured, "MEMORY_LIMIT_BYTES"))
    cgroup = _read_limit(v2)
    if cgroup is not None:
        found.append((cgroup, str(v2)))
    else:
        cgroup = _read_limit(v1)
        if cgroup is not None:
            found.append((cgroup, str(v1)))
    physical = _physical_memory()
    if physical:
        found.append((physical, "physical memory"))
    if not found:
        # Nothing to read (not Linux?): assume the chart's limit.
        return 512 * 1024 * 1024, "default (512 MiB)"
    return min(found)


@dataclasses.dataclass(frozen=True)
class Budget:
    """The figures the gate is built from; logged at startup."""

    memory_limit: int
    limit_source: str
    share: float
    cost: int
    slots: int
    queue: int
    max_wait: float

    @classmethod
    def for_limit(
        cls,
        limit: int,
        source: str,
        *,
        memory_cost_kib: int,
        share: float,
        queue: int,
        max_wait: float,
        slots: int | None = None,
    ) -> Budget:
        """``slots`` from the formula above; an explicit ``slots`` may only lower it."""
        cost = memory_cost_kib * 1024 + _HASH_OVERHEAD
        fitting = max(1, min(MAX_SLOTS, math.floor(share * limit / cost)))
        chosen = fitting if slots is None else max(1, min(slots, fitting))
        return cls(limit, source, share, cost, chosen, queue, max_wait)

    def describe(self) -> str:
        mib = 1024 * 1024
        return (
            f"{self.slots} at once (floor({self.share:g} x {self.memory_limit / mib:.0f} MiB "
            f"[{self.limit_source}] / {self.cost / mib:.0f} MiB per hash), "
            f"{self.queue} waiting for at most {self.max_wait:g} s"
        )


class HashGate:
    """Runs password hashes on ``budget.slots`` threads of its own, behind a bounded queue."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=budget.slots, thread_name_prefix="argon2"
        )
        self._lock = threading.Lock()
        self._admitted = 0  # hashing or waiting
        self._hashing = 0
        self.peak_hashing = 0
        self.refused = 0
        # Seconds per hash, smoothed; only feeds Retry-After.
        self._seconds = 0.05

    @property
    def admitted(self) -> int:
        return self._admitted

    def retry_after(self) -> int:
        """Seconds until the work admitted now would have drained, at least 1."""
        drain = (self._admitted + 1) / self.budget.slots * self._seconds
        return max(1, min(30, math.ceil(drain)))

    def _expected_wait(self) -> float:
        """Seconds a hash admitted now would wait for a slot, at the recent pace."""
        ahead = self._admitted - self.budget.slots + 1
        return max(0, ahead) / self.budget.slots * self._seconds

    def submit[T](self, work: Callable[..., T], *args: object) -> concurrent.futures.Future[T]:
        """Admit ``work(*args)`` or raise :class:`Overloaded` at once."""
        with self._lock:
            if self._admitted >= self.budget.slots + self.budget.queue:
                self.refused += 1
                raise Overloaded(self.retry_after(), "the wait queue is full")
            if self._expected_wait() > self.budget.max_wait:
                # It would only wait to be refused: refuse it now, while that is cheap.
                self.refused += 1
                raise Overloaded(self.retry_after(), "the wait for a slot would be too long")
            self._admitted += 1
        try:
            future = self._executor.submit(self._run, time.monotonic(), work, *args)
        except BaseException:
            self._leave()
            raise
        # Released when the hash is done, not when its caller stops waiting.
        future.add_done_callback(lambda _: self._leave())
        return future

    async def run[T](self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on a hash thread, awaited from the event loop."""
        return await asyncio.wrap_future(self.submit(work, *args))

    def call[T](self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on a hash thread, waited for from a worker thread."""
        return self.submit(work, *args).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _leave(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _run[T](self, admitted_at: float, work: Callable[..., T], *args: object) -> T:
        if time.monotonic() - admitted_at > self.budget.max_wait:
            with self._lock:
                self.refused += 1
            raise Overloaded(
                self.retry_after(), f"waited longer than {self.budget.max_wait:g} s for a slot"
            )
        with self._lock:
            self._hashing += 1
            self.peak_hashing = max(self.peak_hashing, self._hashing)
        started = time.monotonic()
        try:
            return work(*args)
        finally:
            elapsed = time.monotonic() - started
            with self._lock:
                self._hashing -= 1
                self._seconds = 0.8 * self._seconds + 0.2 * elapsed
