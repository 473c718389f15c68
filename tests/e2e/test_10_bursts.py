"""Bursts of sign-ups and sign-ins never kill the backend (issue 26).

Through this module's NodePort (the frontend, as a browser reaches it), 50 and then 200
requests at once, half sign-ups of new accounts and half sign-ins of accounts made
before. All come from one address here (127.0.0.1), so this environment raises the
per-client limit (``ENVIRONMENT_VALUES``): the crowd must reach the password-hash bound,
not stop at 429s that cost nothing. Afterwards the backend pod has not restarted and
was not OOM-killed, every answer was 2xx, 429 or 503 (the last two with
``Retry-After``), and every account answered 2xx signs in. The pod keeps the chart's
512Mi limit (the environment lowers only its requests), and the figures (answers by
code, p95, restarts, the pod's peak memory) are printed. The per-client limit itself,
at its default, is tested in ``tests/security/test_sign_in_limits.py``.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import environments
import httpx
import pytest
from conftest import kubectl, run, wait_for

from reconciler.cluster import kube

#: a crowd from one address: its per-client limit out of the way of the hash bound
ENVIRONMENT_VALUES = (("backend.config.authAttempts.perClient", "100000"),)
ENVIRONMENT = environments.for_module(__file__, ENVIRONMENT_VALUES)
NAMESPACE = ENVIRONMENT.namespace
PASSWORD = "correct horse battery staple"
ALLOWED = {200, 201, 429, 503}
#: how long one burst may take in all, and one request in it
BURST_SECONDS = 180
REQUEST_SECONDS = 60

pytestmark = pytest.mark.usefixtures("workspace")


@dataclasses.dataclass
class Answer:
    kind: str  # "sign-up" or "sign-in"
    email: str
    status: int | str  # the HTTP status, or the name of the transport error
    seconds: float
    retry_after: str | None


def _backend_pod(cluster: kube.Kube) -> dict[str, Any]:
    pods = [
        pod
        for pod in cluster.list(
            "v1", "Pod", NAMESPACE, label_selector="app.kubernetes.io/name=backend"
        )
        if not pod["metadata"].get("deletionTimestamp")
        and "helm.sh/hook" not in (pod["metadata"].get("annotations") or {})
        and pod["metadata"].get("ownerReferences", [{}])[0].get("kind") == "ReplicaSet"
    ]
    assert len(pods) == 1, [pod["metadata"]["name"] for pod in pods]
    return pods[0]


def _backend_state(cluster: kube.Kube) -> dict[str, Any]:
    pod = _backend_pod(cluster)
    [status] = [c for c in pod["status"].get("containerStatuses", []) if c["name"] == "backend"]
    return {
        "uid": pod["metadata"]["uid"],
        "name": pod["metadata"]["name"],
        "restarts": status.get("restartCount", 0),
        "last_state": status.get("lastState") or {},
        "ready": status.get("ready", False),
        "limit": pod["spec"]["containers"][0]["resources"]["limits"]["memory"],
    }


#: the container's memory in its cgroup: v2 names, then v1's
_MEMORY_FILES = {
    "peak": ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes"),
    "current": ("/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
}


def _cgroup_mib(helm_env: dict[str, str], name: str) -> float | None:
    """The backend container's memory (``peak`` since it started, or ``current``), in
    MiB, as its cgroup counts it (what the OOM killer compares with the limit)."""
    for path in _MEMORY_FILES[name]:
        done = run(
            *kubectl(helm_env),
            "-n",
            NAMESPACE,
            "exec",
            "deploy/backend",
            "-c",
            "backend",
            "--",
            "cat",
            path,
            check=False,
            timeout=60,
        )
        text = done.stdout.strip()
        if done.returncode == 0 and text.isdigit():
            return int(text) / 2**20
    return None


def _oom_events(cluster: kube.Kube) -> list[str]:
    return [
        f"{event.get('reason')}: {event.get('message')}"
        for event in cluster.list("v1", "Event", NAMESPACE)
        if "oom" in f"{event.get('reason')} {event.get('message')}".lower()
    ]


async def _post(http: httpx.AsyncClient, kind: str, email: str) -> Answer:
    path = "/api/auth/register" if kind == "sign-up" else "/api/auth/login"
    started = time.monotonic()
    try:
        response = await http.post(path, json={"email": email, "password": PASSWORD})
    except httpx.HTTPError as exc:
        return Answer(kind, email, type(exc).__name__, time.monotonic() - started, None)
    return Answer(
        kind,
        email,
        response.status_code,
        time.monotonic() - started,
        response.headers.get("retry-after"),
    )


def _http(connections: int) -> httpx.AsyncClient:
    assert ENVIRONMENT.url.startswith("http://127.0.0.1:")
    return httpx.AsyncClient(
        base_url=ENVIRONMENT.url,
        timeout=httpx.Timeout(REQUEST_SECONDS, connect=20),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=0),
    )


async def _patiently(kind: str, emails: list[str], want: int) -> list[Answer]:
    """``kind`` for every email, four at a time, each tried again after the
    Retry-After of a 429 or 503, for at most BURST_SECONDS in all."""
    gate = asyncio.Semaphore(4)
    deadline = time.monotonic() + BURST_SECONDS

    async def one(http: httpx.AsyncClient, email: str) -> Answer:
        async with gate:
            while True:
                answer = await _post(http, kind, email)
                if answer.status not in (429, 503) or time.monotonic() > deadline:
                    return answer
                await asyncio.sleep(min(10, int(answer.retry_after or 1)))

    async with _http(8) as http, asyncio.timeout(BURST_SECONDS + REQUEST_SECONDS):
        answers = await asyncio.gather(*(one(http, email) for email in emails))
    wrong = [a for a in answers if a.status != want]
    assert not wrong, f"{kind} did not answer {want}: {wrong[:5]}"
    return answers


async def _burst(size: int, tag: str) -> list[Answer]:
    """``size`` requests at once: half sign-ups of new accounts, half sign-ins of
    accounts made beforehand."""
    existing = [f"old-{tag}-{n}@example.com" for n in range(size // 2)]
    await _patiently("sign-up", existing, 201)
    requests = [("sign-up", f"new-{tag}-{n}@example.com") for n in range(size - size // 2)] + [
        ("sign-in", email) for email in existing
    ]
    async with _http(size) as http, asyncio.timeout(BURST_SECONDS):
        return list(await asyncio.gather(*(_post(http, *request) for request in requests)))


def _p(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@pytest.fixture(scope="module")
def ready(cluster: kube.Kube) -> Iterator[dict[str, Any]]:
    """The app answering on its NodePort, the backend pod as it was before any burst."""
    with httpx.Client(base_url=ENVIRONMENT.url, timeout=20) as http:
        wait_for(lambda: http.get("/api/health").status_code == 200, 180, "the frontend")
        account = {"email": f"warm-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
        wait_for(
            lambda: http.post("/api/auth/register", json=account).status_code == 201,
            180,
            "the backend behind the frontend",
        )
    wait_for(lambda: _backend_state(cluster)["ready"], 120, "the backend pod Ready")
    yield _backend_state(cluster)


@pytest.mark.parametrize("size", [50, 200])
def test_a_burst_of_sign_ups_and_sign_ins_leaves_the_backend_alive_and_answering(
    size: int, ready: dict[str, Any], cluster: kube.Kube, helm_env: dict[str, str]
) -> None:
    assert ready["limit"] == "512Mi"  # the chart's limit: the bound is computed from it
    tag = f"{size}-{uuid.uuid4().hex[:6]}"
    before = _cgroup_mib(helm_env, "current")
    started = time.monotonic()
    answers = asyncio.run(_burst(size, tag))
    took = time.monotonic() - started

    after = _backend_state(cluster)
    codes = collections.Counter(str(a.status) for a in answers)
    seconds = [a.seconds for a in answers]
    peak, current = _cgroup_mib(helm_env, "peak"), _cgroup_mib(helm_env, "current")
    bound = next(
        (
            line.split("password hashes: ", 1)[1]
            for line in run(
                *kubectl(helm_env), "-n", NAMESPACE, "logs", "deploy/backend", check=False
            ).stdout.splitlines()
            if "password hashes: " in line
        ),
        "?",
    )
    by_kind = {
        kind: dict(collections.Counter(str(a.status) for a in answers if a.kind == kind))
        for kind in ("sign-up", "sign-in")
    }
    print(
        f"\nburst of {size} (sign-ups and sign-ins at once, through NodePort "
        f"{ENVIRONMENT.node_port}) in {took:.1f} s with the pre-registrations:"
        f"\n  answers by code: {dict(sorted(codes.items()))}  {by_kind}"
        f"\n  latency: p50 {_p(seconds, 0.5):.2f} s, p95 {_p(seconds, 0.95):.2f} s, "
        f"max {max(seconds):.2f} s"
        f"\n  backend pod {after['name']}: restarts {after['restarts']}, "
        f"last state {after['last_state'] or 'none'}, limit {after['limit']}"
        f"\n  backend memory: peak {peak if peak is None else f'{peak:.0f}'} MiB since the pod "
        f"started, {before if before is None else f'{before:.0f}'} MiB before the burst, "
        f"{current if current is None else f'{current:.0f}'} MiB after"
        f"\n  backend's bound: {bound}"
    )

    assert after["uid"] == ready["uid"], "the backend pod was replaced"
    assert after["restarts"] == 0, after
    assert "OOMKilled" not in str(after["last_state"]) and not after["last_state"], after
    assert not _oom_events(cluster), _oom_events(cluster)
    assert set(codes) <= {str(code) for code in ALLOWED}, codes
    refused = [a for a in answers if a.status in (429, 503)]
    assert all(a.retry_after and int(a.retry_after) >= 1 for a in refused), refused[:5]
    # Not everyone refused: the backend did sign people up and in during the burst.
    assert codes["201"] + codes["200"] > 0, codes

    created = [a.email for a in answers if a.kind == "sign-up" and a.status == 201]
    asyncio.run(_patiently("sign-in", created, 200))
    print(f"  afterwards: all {len(created)} accounts answered 201 signed in")
