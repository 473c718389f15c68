"""A small HTTP/1.1 load generator for the backend's CRUD mix, over raw asyncio streams.

Who calls it: :mod:`bench.backend_cpu`, in its own process, pinned to the core the
server does not use; :mod:`bench.load`, from this machine (the frontend's NodePort) and
as a script in a short-lived pod of the backend's own image (``python -c`` with this
file's text: it imports the standard library only). Raw streams rather than httpx: the
figure is the *server's* CPU per request, and a client that costs more per request than
the server would need a second core to keep it busy.

Each simulated user holds one keep-alive connection and goes through create, list, get,
patch, delete of one todo, over and over:

- :func:`drive`, closed loop: back to back, or with exponential think time after each
  answer;
- :func:`open_loop`: the user's requests *arrive* as a Poisson process of ``rate`` per
  second, whatever the server does; one that arrives while the user's previous request
  is still waiting is sent when that one is answered (one browser, one thing at a time),
  and its latency counts from its arrival, so a slow server cannot hide its queue
  (no coordinated omission).

Every loop is bounded in count and time and every request in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import random
import secrets
import statistics
import sys
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
    """One keep-alive HTTP/1.1 connection to ``host:port`` (127.0.0.1 unless told)."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, *, token: str = "", auth: str = "", body: object = None
    ) -> tuple[int, bytes]:
        """One request; ``token`` is a bearer token, ``auth`` a whole header line
        (``cookie: …``) for a client that signs in otherwise."""
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}:{self.port}\r\n"
        if token:
            head += f"authorization: Bearer {token}\r\n"
        if auth:
            head += f"{auth}\r\n"
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
        length, chunked, closing = _framing(lines)
        assert self._reader is not None
        if chunked:
            text = await self._chunks(self._reader)
        else:
            text = await self._reader.readexactly(length) if length else b""
        if closing:
            await self.close()
        return status, text

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers are sent: the final CRLF
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def _send(self, message: bytes) -> bytes:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(message)
        return await self._reader.readuntil(b"\r\n\r\n")

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer, self._reader = self._writer, None, None
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _framing(lines: list[bytes]) -> tuple[int, bool, bool]:
    """From the header lines: content length, chunked or not, and ``connection: close``."""
    length, chunked, closing = 0, False, False
    for line in lines:
        name, _, value = line.partition(b":")
        name, value = name.strip().lower(), value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            # Node's server (the frontend) streams its answers in chunks.
            if value != b"chunked":
                raise LoadError(f"transfer-encoding {value!r} is not expected")
            chunked = True
        elif name == b"connection" and value == b"close":
            closing = True
    return length, chunked, closing


async def sign_up(port: int, email: str, password: str, host: str = "127.0.0.1") -> str:
    """Register and log in one account; its access token."""
    connection = Connection(port, host)
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


@dataclasses.dataclass
class OpenTally(Tally):
    """What an open loop saw, and what it asked for: latencies count from arrival."""

    arrived: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0

    def figures(self) -> dict[str, object]:
        """p50/p95/p99 in seconds, errors, achieved rate (answers per second)."""
        # inclusive: a percentile of a few hundred answers stays within what was seen
        cuts = (
            statistics.quantiles(self.latencies, n=100, method="inclusive")
            if len(self.latencies) > 1
            else [math.nan] * 99
        )
        answered = len(self.latencies)
        return {
            "arrived": self.arrived,
            "answered": answered,
            "seconds": self.seconds,
            "achieved_rate": answered / self.seconds if self.seconds else math.nan,
            "p50": cuts[49],
            "p95": cuts[94],
            "p99": cuts[98],
            "max": max(self.latencies, default=math.nan),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "client_cpu_ms_per_request": self.client_cpu / answered * 1000
            if answered
            else math.nan,
        }


async def _open_user(
    connection: Connection, auth: str, until: float, tally: OpenTally, *, rate: float, seed: int
) -> None:
    """One user's Poisson arrivals of the mix until ``until`` (monotonic), then its
    last answers; at most ``rate`` x the window x 4 requests, each bounded in time."""
    chance = random.Random(seed)  # noqa: S311  # arrival times, not secrets
    arrival = time.monotonic() + chance.expovariate(rate)
    limit = max(10, math.ceil(rate * (until - time.monotonic()) * 4))
    steps, phase, todo = 0, 0, ""
    try:
        while arrival < until and steps < limit:
            # create, list, get, patch, delete; a failed step starts over with a create
            method, path, expect, body = (
                ("POST", "/api/todos", 201, {"title": f"open {seed}"}),
                ("GET", "/api/todos", 200, None),
                ("GET", todo, 200, None),
                ("PATCH", todo, 200, {"done": True}),
                ("DELETE", todo, 204, None),
            )[phase]
            await asyncio.sleep(max(0.0, arrival - time.monotonic()))
            tally.arrived += 1
            if time.monotonic() - arrival > REQUEST_TIMEOUT:
                # queued behind this user's earlier answers for longer than one request
                # may take: the user has given up (and the run stays bounded in time)
                tally.error(f"{method}: queued past the timeout")
                return
            try:
                status, text = await asyncio.wait_for(
                    connection.request(method, path, auth=auth, body=body), REQUEST_TIMEOUT
                )
            except (OSError, TimeoutError, asyncio.IncompleteReadError, LoadError) as exc:
                tally.error(f"{method}: {type(exc).__name__}")
                return  # a broken connection ends this user, as in the closed loop
            tally.latencies.append(time.monotonic() - arrival)
            arrival += chance.expovariate(rate)
            steps += 1
            if status != expect:
                tally.error(f"{method}: {status}")
                phase = 0
                continue
            if method == "POST":
                todo = f"/api/todos/{json.loads(text)['id']}"
            phase = (phase + 1) % 5
    finally:
        await connection.close()


async def open_loop(
    port: int, auths: list[str], seconds: float, *, rate: float = 1.0, host: str = "127.0.0.1"
) -> OpenTally:
    """Every user of ``auths`` (one header line each: ``authorization: Bearer …`` or
    ``cookie: …``) sends the mix as Poisson arrivals of ``rate`` per second for
    ``seconds``; the tally has the achieved rate and this process's own CPU."""
    tally = OpenTally()
    cpu_before, started = time.process_time(), time.monotonic()
    until = started + seconds
    await asyncio.gather(
        *(
            _open_user(Connection(port, host), auth, until, tally, rate=rate, seed=index)
            for index, auth in enumerate(auths)
        )
    )
    tally.seconds = time.monotonic() - started
    tally.client_cpu = time.process_time() - cpu_before
    return tally


async def _reachable(host: str, port: int, seconds: float = 60.0) -> None:
    """Until the server answers: a NetworkPolicy made just before this run (the in-cluster
    generator's) reaches the node's firewall a few seconds after it is created."""
    deadline = time.monotonic() + seconds
    while True:
        connection = Connection(port, host)
        said = ""
        try:
            status, _ = await connection.request("GET", "/api/health")
            if status == 200:
                return
            said = f"answered {status}"
        except OSError as exc:
            said = str(exc)
        finally:
            await connection.close()
        if time.monotonic() > deadline:
            raise LoadError(f"{host}:{port} not reachable after {seconds:.0f}s: {said}")
        await asyncio.sleep(0.5)


async def _accounts(host: str, port: int, count: int) -> list[str]:
    """``count`` fresh accounts (random addresses and passwords, never written down),
    eight sign-ups at a time: their bearer header lines."""
    await _reachable(host, port)
    run_id = secrets.token_hex(4)
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> str:
        async with limit:
            email = f"open-{run_id}-{index}@example.com"
            token = await sign_up(port, email, secrets.token_urlsafe(16), host)
            return f"authorization: Bearer {token}"

    return list(await asyncio.gather(*(one(index) for index in range(count))))


#: how a run's result line starts in the script's output (the pod's log)
RESULT_MARK = "open-loop-result "


def main(argv: list[str] | None = None) -> int:
    """Script mode (in the load-generator pod, or by hand against 127.0.0.1): sign up
    the largest level's users once, then for each level and repetition one open loop;
    one ``RESULT_MARK`` JSON line per run on stdout."""
    parser = argparse.ArgumentParser(description="open-loop CRUD mix against the backend")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--users", default="50", help="comma-separated levels, e.g. 50,200")
    parser.add_argument("--rate", type=float, default=1.0, help="requests/s per user")
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args(argv)
    levels = [int(level) for level in arguments.users.split(",")]
    if not levels or min(levels) < 1 or max(levels) > 500 or not 0 < arguments.seconds <= 300:
        parser.error("levels are 1-500 users, runs at most 300 s")
    auths = asyncio.run(_accounts(arguments.host, arguments.port, max(levels)))
    print(f"signed up {len(auths)} users", file=sys.stderr, flush=True)
    for repetition in range(max(1, min(arguments.repeat, 10))):
        for level in levels:
            tally = asyncio.run(
                open_loop(
                    arguments.port,
                    auths[:level],
                    arguments.seconds,
                    rate=arguments.rate,
                    host=arguments.host,
                )
            )
            line = {"users": level, "repetition": repetition, **tally.figures()}
            print(RESULT_MARK + json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
