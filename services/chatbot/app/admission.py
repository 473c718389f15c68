"""How many chat turns run at once, and how many one user may start.

A chat turn is the chatbot's costly request: an agent run of up to `max_turns` model
calls (paid, and up to a minute long), an MCP session and backend calls, all held in
memory until it ends. `POST /api/chat` therefore takes a slot of :class:`ChatGate`
(`CHAT_CONCURRENCY` turns at once; `CHAT_QUEUE_LENGTH` more wait, each for at most
`CHAT_QUEUE_TIMEOUT_SECONDS`; beyond that a 503 with `Retry-After`), and spends one
message of its user's :class:`UserRate` bucket (`CHAT_MESSAGES_PER_USER` per
`CHAT_MESSAGES_WINDOW_SECONDS`; beyond that a 429 with `Retry-After`). Both live in
this process and are used from its event loop only.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

#: users whose buckets are remembered; the least recently seen is forgotten first
MAX_USERS = 10_000


class Refused(Exception):
    """A chat turn not started: `status_code` 503 (busy) or 429 (this user's limit)."""

    def __init__(self, status_code: int, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after


class ChatGate:
    def __init__(self, *, slots: int, queue: int, max_wait: float) -> None:
        self.slots, self.queue, self.max_wait = slots, queue, max_wait
        self._semaphore = asyncio.Semaphore(slots)
        self.admitted = 0  # running or waiting
        self.running = 0
        self.peak_running = 0
        # Seconds per turn, smoothed; only feeds Retry-After.
        self._seconds = 5.0

    def retry_after(self) -> int:
        return max(1, min(60, math.ceil((self.admitted + 1) / self.slots * self._seconds)))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.admitted >= self.slots + self.queue:
            raise self._busy("every chat slot is taken and the queue is full")
        self.admitted += 1
        try:
            try:
                async with asyncio.timeout(self.max_wait):
                    await self._semaphore.acquire()
            except TimeoutError:
                raise self._busy(f"no chat slot came free within {self.max_wait:g} s") from None
            self.running += 1
            self.peak_running = max(self.peak_running, self.running)
            started = time.monotonic()
            try:
                yield
            finally:
                self.running -= 1
                self._semaphore.release()
                self._seconds = 0.8 * self._seconds + 0.2 * (time.monotonic() - started)
        finally:
            self.admitted -= 1

    def _busy(self, why: str) -> Refused:
        wait = self.retry_after()
        return Refused(503, f"The assistant is busy ({why}); try again in {wait} s.", wait)


class UserRate:
    """`messages` per `window` seconds per user: a token bucket each."""

    def __init__(self, *, messages: int, window: float) -> None:
        self.messages = messages
        self.rate = messages / window
        self._buckets: collections.OrderedDict[int, tuple[float, float]] = collections.OrderedDict()

    def take(self, user_id: int) -> None:
        """Spend one message of `user_id`, or raise :class:`Refused` (429)."""
        now = time.monotonic()
        tokens, then = self._buckets.get(user_id, (float(self.messages), now))
        tokens = min(self.messages, tokens + (now - then) * self.rate)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.rate)
            self._buckets[user_id] = (tokens, now)
            raise Refused(429, f"Too many chat messages; try again in {wait} s.", wait)
        self._buckets[user_id] = (tokens - 1, now)
        self._buckets.move_to_end(user_id)
        while len(self._buckets) > MAX_USERS:
            self._buckets.popitem(last=False)
