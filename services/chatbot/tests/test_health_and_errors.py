"""Health, readiness and the errors a caller sees: no token, no model, backend down."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import BackendProcess, ChatbotFactory, User, free_port, start_backend
from scripted import Call, Say, ScriptedModel, Seen, Wait


def test_without_a_model_chat_is_off_and_says_why(backend: BackendProcess, chatbot: ChatbotFactory) -> None:
    client = chatbot(openai_api_key=None, backend_url=backend.url)

    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "OPENAI_API_KEY" in ready.json()["detail"]
    chat = client.post("/api/chat", json={"message": "hi"}, headers={"Authorization": "Bearer x"})
    assert chat.status_code == 503
    assert chat.json()["detail"] == ready.json()["detail"]


def test_an_empty_api_key_counts_as_no_model(backend: BackendProcess, chatbot: ChatbotFactory) -> None:
    client = chatbot(openai_api_key="  ", backend_url=backend.url)

    assert "OPENAI_API_KEY" in client.get("/ready").json()["detail"]


def test_ready_when_model_configured_and_backend_up(backend: BackendProcess, chatbot: ChatbotFactory) -> None:
    client = chatbot(model=ScriptedModel([]), backend_url=backend.url)

    assert client.get("/ready").json() == {"status": "ready"}


def test_a_configured_api_key_turns_chat_on(backend: BackendProcess, chatbot: ChatbotFactory) -> None:
    # The model is never called here; only the readiness verdict depends on the key.
    client = chatbot(openai_api_key="sk-test-not-used", backend_url=backend.url)

    assert client.get("/ready").status_code == 200


def test_chat_without_a_token_is_401(backend: BackendProcess, chatbot: ChatbotFactory) -> None:
    client = chatbot(model=ScriptedModel([]), backend_url=backend.url)

    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = client.post("/api/chat", json={"message": "hi"}, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_chat_with_a_token_the_backend_rejects_is_401(
    backend: BackendProcess, chatbot: ChatbotFactory
) -> None:
    model = ScriptedModel([])
    client = chatbot(model=model, backend_url=backend.url)

    response = client.post("/api/chat", json={"message": "hi"}, headers={"Authorization": "Bearer forged"})

    assert response.status_code == 401
    assert "Invalid or expired token" in response.json()["detail"]
    assert model.seen == []  # no model call is spent on a stranger


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "x" * 4001}, "message"),
        ({}, "message"),
        ({"message": "hi", "conversation_id": "../../etc"}, "conversation_id"),
        ({"message": "hi", "conversation_id": "x" * 65}, "conversation_id"),
    ],
)
def test_message_limits_are_422_naming_the_field(
    backend: BackendProcess,
    make_user: Callable[[], User],
    chatbot: ChatbotFactory,
    body: dict[str, object],
    field: str,
) -> None:
    client = chatbot(model=ScriptedModel([]), backend_url=backend.url)

    response = client.post("/api/chat", json=body, headers=make_user().headers)

    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]


def test_the_longest_allowed_message_is_accepted(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    client = chatbot(model=ScriptedModel([Say("ok")]), backend_url=backend.url)

    response = client.post("/api/chat", json={"message": "x" * 4000}, headers=make_user().headers)

    assert response.status_code == 200


def test_the_mcp_endpoint_is_not_reachable_from_outside(
    backend: BackendProcess, chatbot: ChatbotFactory
) -> None:
    client = chatbot(model=ScriptedModel([]), backend_url=backend.url)

    assert client.post("/mcp", json={}).status_code == 404


def test_backend_refusing_connections_is_a_fast_clear_503(chatbot: ChatbotFactory) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    model = ScriptedModel([])
    client = chatbot(model=model, backend_url=dead_url)

    started = time.monotonic()
    chat = client.post("/api/chat", json={"message": "hi"}, headers={"Authorization": "Bearer t"})
    ready = client.get("/ready")
    elapsed = time.monotonic() - started

    assert elapsed < 3
    assert chat.status_code == 503
    assert "unreachable" in chat.json()["detail"] and dead_url in chat.json()["detail"]
    assert ready.status_code == 503 and dead_url in ready.json()["detail"]
    assert model.seen == []


@pytest.fixture
def silent_backend() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a hung backend."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_hung_backend_times_out_instead_of_hanging(silent_backend: str, chatbot: ChatbotFactory) -> None:
    client = chatbot(model=ScriptedModel([]), backend_url=silent_backend, backend_timeout_seconds=1)

    started = time.monotonic()
    chat = client.post("/api/chat", json={"message": "hi"}, headers={"Authorization": "Bearer t"})
    elapsed = time.monotonic() - started

    assert elapsed < 4
    assert chat.status_code == 503
    assert "did not answer in time" in chat.json()["detail"]


def test_backend_dying_mid_chat_gives_the_model_a_clear_tool_error(
    tmp_path_factory: pytest.TempPathFactory, chatbot: ChatbotFactory
) -> None:
    from conftest import register

    doomed = start_backend(tmp_path_factory.mktemp("doomed"))
    try:
        user = register(doomed.url)

        killed_at: list[float] = []

        def kill_backend_then_list(seen: Seen) -> Call:
            doomed.process.kill()
            doomed.process.wait()
            killed_at.append(time.monotonic())
            return Call("list_todos", {})

        model = ScriptedModel([kill_backend_then_list, lambda seen: Say(seen.tool_outputs()[-1])])
        client = chatbot(model=model, backend_url=doomed.url)

        response = client.post("/api/chat", json={"message": "list"}, headers=user.headers)
        answered_after = time.monotonic() - killed_at[0]
    finally:
        doomed.stop()

    assert answered_after < 5
    assert response.status_code == 200, response.text
    assert "unreachable" in response.json()["reply"]


def test_an_unreachable_model_server_is_a_clear_502(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    # The real OpenAI-compatible client, pointed at a port where nothing listens.
    model_url = f"http://127.0.0.1:{free_port()}/v1"
    client = chatbot(openai_api_key="sk-test-unused", openai_base_url=model_url, backend_url=backend.url)

    started = time.monotonic()
    response = client.post("/api/chat", json={"message": "hi"}, headers=make_user().headers)

    assert time.monotonic() - started < 15
    assert response.status_code == 502
    assert model_url in response.json()["detail"] and "APIConnectionError" in response.json()["detail"]
    assert "sk-test-unused" not in response.text


def test_a_run_longer_than_the_chat_timeout_is_a_clear_504(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    client = chatbot(model=ScriptedModel([Wait(30)]), backend_url=backend.url, chat_timeout_seconds=1)

    started = time.monotonic()
    response = client.post("/api/chat", json={"message": "hi"}, headers=make_user().headers)

    assert time.monotonic() - started < 5
    assert response.status_code == 504
    assert "did not finish within 1 s" in response.json()["detail"]
