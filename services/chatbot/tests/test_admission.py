"""Chat turns are bounded: at most CHAT_CONCURRENCY run at once, a few more wait, the rest
are told to come back (503 + Retry-After); one user's messages are limited (429)."""

from __future__ import annotations

import collections
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from conftest import BackendProcess, ChatbotFactory, User
from scripted import ScriptedModel, Wait

from app import admission


def test_a_burst_of_chats_never_runs_more_turns_than_the_bound(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    users = [make_user() for _ in range(12)]
    # Each turn takes 0.5 s of "model time"; 2 run at once, 2 wait up to 3 s.
    client = chatbot(
        model=ScriptedModel([], then=Wait(0.5)),
        backend_url=backend.url,
        chat_concurrency=2,
        chat_queue_length=2,
        chat_queue_timeout_seconds=3,
    )
    gate: admission.ChatGate = client.app.state.chat_gate  # type: ignore[attr-defined]

    def send(user: User) -> tuple[int, str | None]:
        answer = client.post("/api/chat", json={"message": "hi"}, headers=user.headers)
        return answer.status_code, answer.headers.get("retry-after")

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        answers = list(pool.map(send, users))

    codes = collections.Counter(code for code, _ in answers)
    assert gate.peak_running == 2, gate.peak_running
    assert set(codes) == {200, 503} and codes[200] >= 4, codes
    assert all(int(retry or 0) >= 1 for code, retry in answers if code == 503)
    assert gate.admitted == gate.running == 0


def test_one_user_gets_429_past_their_messages_and_others_do_not(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    chatty, quiet = make_user(), make_user()
    client = chatbot(model=ScriptedModel([], then=Wait(0)), backend_url=backend.url, chat_messages_per_user=2)

    codes = [client.post("/api/chat", json={"message": "hi"}, headers=chatty.headers) for _ in range(3)]
    assert [c.status_code for c in codes] == [200, 200, 429]
    assert "Too many chat messages" in codes[-1].json()["detail"]
    # 2 per 60 s: the next comes back within 30 s.
    assert 1 <= int(codes[-1].headers["retry-after"]) <= 30
    assert client.post("/api/chat", json={"message": "hi"}, headers=quiet.headers).status_code == 200
