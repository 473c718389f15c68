"""No acknowledged write is lost while the backend is upgraded or its pod is deleted.

100 concurrent writers (asyncio + httpx, one signed-in user, through the frontend's
NodePort, the way browsers reach the app) create todos while (a) a backend-only commit
is reconciled — the backend's ``Recreate`` strategy stops the old pod before the new one
starts — and (b) the backend pod is deleted. Writes that fail during the gap are fine;
every write that got a 2xx must be readable afterwards, with its title, and SQLite's
``PRAGMA integrity_check`` must say ``ok``.
"""

from __future__ import annotations

import asyncio
import collections.abc
import json
import pathlib
import uuid

import environments
import httpx
import lumina_stack
import pytest

ENVIRONMENT = environments.for_module(__file__)
NAMESPACE = ENVIRONMENT.namespace
FRONTEND = ENVIRONMENT.url

WRITERS = 100


async def _write_while(
    cookies: httpx.Cookies, disturb: collections.abc.Callable[[], None], settle: float = 4.0
) -> tuple[dict[int, str], int]:
    """Run the writers, call ``disturb`` in a thread, keep writing ``settle`` s after it."""
    acknowledged: dict[int, str] = {}
    attempts = 0
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=WRITERS, max_keepalive_connections=WRITERS)
    async with httpx.AsyncClient(
        base_url=FRONTEND, cookies=cookies, timeout=30, limits=limits
    ) as client:

        async def writer(number: int) -> None:
            nonlocal attempts
            sequence = 0
            while not stop.is_set():
                sequence += 1
                attempts += 1
                title = f"w{number}-{sequence}-{uuid.uuid4().hex[:8]}"
                try:
                    response = await client.post("/api/todos", json={"title": title})
                except httpx.HTTPError:
                    await asyncio.sleep(0.5)
                    continue
                if 200 <= response.status_code < 300:
                    acknowledged[int(response.json()["id"])] = title
                    await asyncio.sleep(0.2)
                else:
                    await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(writer(n)) for n in range(WRITERS)]
        await asyncio.sleep(3)
        await asyncio.to_thread(disturb)
        await asyncio.sleep(settle)
        stop.set()
        await asyncio.gather(*tasks)
    return acknowledged, attempts


async def _missing(cookies: httpx.Cookies, acknowledged: dict[int, str]) -> list[int]:
    limit = asyncio.Semaphore(20)
    async with httpx.AsyncClient(base_url=FRONTEND, cookies=cookies, timeout=30) as client:

        async def present(todo_id: int, title: str) -> bool:
            async with limit:
                for _attempt in range(5):
                    try:
                        response = await client.get(f"/api/todos/{todo_id}")
                    except httpx.HTTPError:
                        await asyncio.sleep(1)
                        continue
                    if response.status_code in (200, 404):
                        return response.status_code == 200 and response.json()["title"] == title
                    await asyncio.sleep(1)
                raise AssertionError(f"todo {todo_id} could not be read")

        found = await asyncio.gather(*(present(i, t) for i, t in acknowledged.items()))
    return [todo_id for todo_id, ok in zip(acknowledged, found, strict=True) if not ok]


def _check(cookies: httpx.Cookies, acknowledged: dict[int, str], attempts: int, what: str) -> None:
    lumina_stack.wait_for(
        lambda: httpx.get(f"{FRONTEND}/api/todos", cookies=cookies, timeout=10).status_code == 200,
        180,
        "the backend to serve again",
    )
    missing = asyncio.run(_missing(cookies, acknowledged))
    present = len(acknowledged) - len(missing)
    print(f"{what}: {attempts} writes tried, {len(acknowledged)} acknowledged, {present} present")
    lumina_stack.count("writes acknowledged", len(acknowledged))
    lumina_stack.count("writes present", present)
    assert len(acknowledged) > WRITERS, f"too few writes got through to show anything: {what}"
    assert not missing, f"{len(missing)} acknowledged writes are gone after {what}: {missing[:20]}"
    assert lumina_stack.backend_sql("pragma integrity_check") == "ok"


def _ready_backend_pods() -> list[str]:
    found = lumina_stack.kubectl(
        "get", "pods", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=backend", "-o", "json"
    ).stdout
    return [
        str(pod["metadata"]["uid"])
        for pod in json.loads(found)["items"]
        if not pod["metadata"].get("deletionTimestamp")
        and any(
            condition["type"] == "Ready" and condition["status"] == "True"
            for condition in pod.get("status", {}).get("conditions", [])
        )
    ]


@pytest.fixture
def writer_cookies() -> collections.abc.Iterator[httpx.Cookies]:
    client = lumina_stack.signed_in(f"writer-{uuid.uuid4().hex[:8]}@example.com")
    yield client.cookies
    client.close()


@pytest.mark.slow
def test_acknowledged_writes_survive_a_backend_upgrade(
    workspace: pathlib.Path, writer_cookies: httpx.Cookies
) -> None:
    code, output = lumina_stack.once(workspace)
    assert code == 0, output
    lumina_stack.change_backend(workspace, "upgraded under 100 writers")
    outcome: list[tuple[int, str]] = []

    def upgrade() -> None:
        outcome.append(lumina_stack.once(workspace))

    lumina_stack.count("faults injected")
    acknowledged, attempts = asyncio.run(_write_while(writer_cookies, upgrade))
    code, output = outcome[0]
    assert code == 0, output
    assert lumina_stack.last_cycle(workspace)["built"] == ["backend"]
    _check(writer_cookies, acknowledged, attempts, "a backend upgrade (Recreate)")
    lumina_stack.count("faults survived")


@pytest.mark.slow
def test_acknowledged_writes_survive_a_deleted_backend_pod(
    environment: object, writer_cookies: httpx.Cookies
) -> None:
    def delete_pod() -> None:
        old = set(_ready_backend_pods())
        assert old, "no ready backend pod to delete"
        lumina_stack.kubectl(
            "delete", "pod", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=backend", "--wait=false"
        )
        lumina_stack.wait_for(
            lambda: bool(set(_ready_backend_pods()) - old), 180, "a new ready backend pod"
        )

    lumina_stack.count("faults injected")
    acknowledged, attempts = asyncio.run(_write_while(writer_cookies, delete_pod))
    _check(writer_cookies, acknowledged, attempts, "a deleted backend pod")
    lumina_stack.count("faults survived")
