"""A small HTTP/1.1 load generator for the backend's CRUD mix, over raw asyncio streams.

Who calls it: :mod:`bench.backend_cpu`, in its own process, pinned to the core the
server does not use. Raw streams rather than httpx: the figure is the *server's* CPU
per request, and a client that costs more per request than the server would need a
second core to keep it busy. Each simulated user holds one keep-alive connection and
loops create, list, get, patch, delete of one todo, either back to back (closed loop)
or with exponential think time between requests (open loop: Poisson arrivals per user).
Every loop is bounded in count and every request in time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time

#: one request may take this long before it counts as an error (and the user stops)
REQUEST_TIMEOUT = 30.0


class LoadError(Exception):
    """The server answered something the mix did not expect."""


@dataclasses.dataclass
class Tally:
    """What the users saw: one latency per answered request, and the errors."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


class Connection:
    """One keep-alive HTTP/1.1 connection to ``127.0.0.1:port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, *, token: str = "", body: object = None
    ) -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n"
        if token:
            head += f"authorization: Bearer {token}\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
        message = head.encode() + b"\r\n" + payload
        reused = self._writer is not None
        try:
            answer = await self._send(message)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The server closed the idle keep-alive connection (uvicorn after 5 s), as
            # it may: open a new one and send again, as a browser does. A connection
            # that fails with nothing read back means the request was never taken.
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            await self.close()
            answer = await self._send(message)
        status_line, *lines = answer.split(b"\r\n")
        status = int(status_line.split()[1])
        length = 0
        for line in lines:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise LoadError("chunked responses are not expected from this API")
        return status, await self._reader.readexactly(length) if length else b""

    async def _send(self, message: bytes) -> bytes:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        self._writer.write(message)
        return await self._reader.readuntil(b"\r\n\r\n")

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def sign_up(port: int, email: str, password: str) -> str:
    """Register and log in one account; its access token."""
    connection = Connection(port)
    try:
        credentials = {"email": email, "password": password}
        status, text = await connection.request("POST", "/api/auth/register", body=credentials)
        if status != 201:
            raise LoadError(f"register {email}: {status} {text[:200]!r}")
        status, text = await connection.request("POST", "/api/auth/login", body=credentials)
        if status != 200:
            raise LoadError(f"login {email}: {status} {text[:200]!r}")
        return str(json.loads(text)["access_token"])
    finally:
        await connection.close()


async def _user(
    port: int, token: str, loops: int, tally: Tally, *, think: float, seed: int
) -> None:
    """``loops`` rounds of the CRUD mix; ``think`` > 0 waits exponentially between requests."""
    chance = random.Random(seed)  # noqa: S311  # arrival times, not secrets
    connection = Connection(port)

    async def call(method: str, path: str, expect: int, body: object = None) -> bytes | None:
        if think:
            await asyncio.sleep(chance.expovariate(1 / think))
        started = time.perf_counter()
        try:
            status, text = await asyncio.wait_for(
                connection.request(method, path, token=token, body=body), REQUEST_TIMEOUT
            )
        except (OSError, TimeoutError, asyncio.IncompleteReadError, LoadError) as exc:
            tally.error(f"{method}: {type(exc).__name__}")
            raise
        tally.latencies.append(time.perf_counter() - started)
        if status != expect:
            tally.error(f"{method}: {status}")
            return None
        return text

    try:
        for loop in range(loops):
            created = await call("POST", "/api/todos", 201, {"title": f"load {seed}-{loop}"})
            await call("GET", "/api/todos", 200)
            if created is None:
                continue
            todo = f"/api/todos/{json.loads(created)['id']}"
            await call("GET", todo, 200)
            await call("PATCH", todo, 200, {"done": True})
            await call("DELETE", todo, 204)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, LoadError):
        pass  # counted in the tally; a broken connection ends this user
    finally:
        await connection.close()


async def drive(port: int, tokens: list[str], loops: int, *, think: float = 0.0) -> Tally:
    """Every token's user runs ``loops`` rounds of the mix at once."""
    tally = Tally()
    await asyncio.gather(
        *(
            _user(port, token, loops, tally, think=think, seed=index)
            for index, token in enumerate(tokens)
        )
    )
    return tally
