"""Sign-in attempts are limited per client, and a client cannot pick its own address.

Through the frontend's NodePort, as a browser reaches it, at the chart's defaults (20
attempts a minute per client). Every attempt sends an X-Forwarded-For
of its own, as a script that wanted a fresh address per guess would: the frontend
(edge/serve.cjs) replaces it with the address its socket saw, so the guesses are all
one client, and past 20 they get 429 with Retry-After, before any password is hashed.
"""

from __future__ import annotations

import ipaddress
import math
import time
import uuid

import environments
import httpx
import lumina_stack

ENVIRONMENT = environments.for_module(__file__)
PER_CLIENT = 20  # the chart's backend.config.authAttempts.perClient


def _made_up(n: int) -> str:
    # 198.18.0.0/15 is for benchmarks (RFC 2544): never a real client.
    return str(ipaddress.ip_address("198.18.0.1") + n)


def test_guesses_from_made_up_addresses_are_one_client_and_get_429_past_the_limit() -> None:
    # The app serving first; its sign-up and sign-in are 2 attempts of this client.
    lumina_stack.signed_in(f"first-{uuid.uuid4().hex[:8]}@example.com").close()
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(base_url=ENVIRONMENT.url, timeout=30) as client:
        started = time.monotonic()
        answers = [
            client.post(
                "/api/auth/login",
                json={"email": f"guess-{tag}-{n}@example.com", "password": "not the password"},
                headers={"X-Forwarded-For": _made_up(n)},
            )
            for n in range(PER_CLIENT + 10)
        ]
        took = time.monotonic() - started
    codes = [answer.status_code for answer in answers]
    assert set(codes) <= {401, 429}, codes
    # 20 a minute: one attempt comes back every 3 s while the guesses go on.
    allowed = PER_CLIENT - 2
    refilled = math.floor(took * PER_CLIENT / 60) + 1
    assert allowed <= codes.count(401) <= allowed + refilled, (codes, took)
    refused = answers[-1]
    assert refused.status_code == 429, codes
    assert "from this address" in refused.json()["detail"], refused.text
    assert int(refused.headers["Retry-After"]) >= 1, refused.headers
