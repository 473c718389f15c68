"""Per-client and per-account limits on sign-in and sign-up attempts.

Each is a token bucket: ``attempts`` at once, refilled at ``attempts`` per
``window`` seconds. An attempt beyond it gets :class:`TooManyAttempts` (a 429 with
``Retry-After``) before any database read or password hash. The buckets live in
this process (the backend runs exactly one replica) and are bounded in number: the
least recently used is forgotten first, which only ever errs on the side of letting
one more attempt through.

The client is the address the request came from. Requests arrive through the
frontend's server-side proxy, so that address is the frontend pod's; the frontend
says whose request it forwards in ``X-Forwarded-For``, and that header is believed
only from a peer in ``TRUSTED_PROXIES`` (IP addresses, networks, or host names such
as the chart's headless Service ``frontend-pods``, re-resolved every few seconds).
From anyone else it is ignored, so a client cannot pick its own identity by sending
the header straight to the backend.

A peer on the pod's own loopback is not limited per client: only ``kubectl
port-forward`` and ``kubectl exec`` reach the backend from there, and both need the
cluster rights of an operator (the benchmark registers its accounts that way). The
per-account limit holds for them all the same.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import math
import socket
import time

from starlette.requests import Request

#: buckets kept per limiter; about 100 bytes each
MAX_KEYS = 20_000
#: how long a resolved TRUSTED_PROXIES name is believed
_RESOLVED_FOR = 10.0
#: how often an unknown peer may trigger a fresh resolution
_RESOLVE_AT_MOST_EVERY = 2.0

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TooManyAttempts(Exception):
    status_code = 429

    def __init__(self, retry_after: int, who: str) -> None:
        super().__init__(who)
        self.retry_after = retry_after
        self.detail = f"Too many sign-in or sign-up attempts {who}; try again in {retry_after} s."


class AttemptLimiter:
    """Token buckets by key; used from the event loop only."""

    def __init__(self, attempts: int, window: float, *, max_keys: int = MAX_KEYS) -> None:
        self.attempts = attempts
        self.rate = attempts / window  # tokens per second
        self._max_keys = max_keys
        # key -> (tokens, when they were counted)
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, key: str, now: float | None = None) -> float:
        """Spend one attempt of ``key``: 0 when allowed, else the seconds until one is."""
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.get(key, (self.attempts, now))
        tokens = min(self.attempts, tokens + (now - then) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            self._buckets.move_to_end(key)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return 0.0

    def give_back(self, key: str) -> None:
        """Return the attempt just taken (it was refused for another reason)."""
        found = self._buckets.get(key)
        if found is not None:
            tokens, then = found
            self._buckets[key] = (min(self.attempts, tokens + 1), then)

    def __len__(self) -> int:
        return len(self._buckets)


class TrustedProxies:
    """Peers whose ``X-Forwarded-For`` is believed."""

    def __init__(self, entries: list[str]) -> None:
        self.networks: list[Network] = []
        self.names: list[str] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.append(entry)
        self._resolved: frozenset[str] = frozenset()
        self._resolved_at = -math.inf

    @classmethod
    def parse(cls, text: str) -> TrustedProxies:
        return cls([part.strip() for part in text.split(",") if part.strip()])

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    async def trusts(self, peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if any(address in network for network in self.networks):
            return True
        if not self.names:
            return False
        age = time.monotonic() - self._resolved_at
        if age > _RESOLVED_FOR or (peer not in self._resolved and age > _RESOLVE_AT_MOST_EVERY):
            await self._resolve()
        return peer in self._resolved

    async def _resolve(self) -> None:
        self._resolved_at = time.monotonic()
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        for name in self.names:
            try:
                async with asyncio.timeout(2):
                    infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except (OSError, TimeoutError):
                continue  # not resolvable now (no frontend pod yet): trust nobody by it
            found.update(str(ipaddress.ip_address(info[4][0])) for info in infos)
        self._resolved = frozenset(found)


def _forwarded_client(header: str | None) -> str | None:
    """The address the trusted proxy appended last, if it is one."""
    if not header:
        return None
    last = header.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return None


def _on_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class AuthLimits:
    """The two limits of the sign-in and sign-up routes."""

    def __init__(
        self,
        *,
        per_client: int,
        per_account: int,
        window: float,
        trusted: TrustedProxies,
    ) -> None:
        self.clients = AttemptLimiter(per_client, window)
        self.accounts = AttemptLimiter(per_account, window)
        self.trusted = trusted

    async def client_of(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        if self.trusted and await self.trusted.trusts(peer):
            return _forwarded_client(request.headers.get("x-forwarded-for")) or peer
        return peer

    async def attempt(self, request: Request, account: str | None) -> Attempt:
        """Spend one attempt of the request's client and of ``account`` (an email),
        or raise :class:`TooManyAttempts` having spent neither."""
        client = await self.client_of(request)
        wait = 0.0 if _on_loopback(client) else self.clients.take(client)
        if wait:
            raise TooManyAttempts(math.ceil(wait), "from this address")
        if account is not None:
            wait = self.accounts.take(account)
            if wait:
                self.clients.give_back(client)
                raise TooManyAttempts(math.ceil(wait), "for this account")
        return Attempt(self, client, account)


class Attempt:
    """An attempt that was let through; :meth:`give_back` when it never got to try."""

    def __init__(self, limits: AuthLimits, client: str, account: str | None) -> None:
        self._limits, self._client, self._account = limits, client, account

    def give_back(self) -> None:
        self._limits.clients.give_back(self._client)
        if self._account is not None:
            self._limits.accounts.give_back(self._account)
