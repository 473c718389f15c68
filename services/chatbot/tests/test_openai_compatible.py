"""OPENAI_API_KEY, OPENAI_BASE_URL and CHAT_MODEL really drive the production model path.

Here the model stand-in sits one seam further out than in the other tests: a scripted
OpenAI-compatible HTTP server (Chat Completions, as vLLM, Ollama or LiteLLM serve it)
replaces the paid API, so the real `openai` client and the Agents SDK's
`OpenAIChatCompletionsModel`, which `app.chatting.build_model` wires up, run
unchanged. The backend and MCP tools are real, as everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import BackendProcess, ChatbotFactory, ServerThread, User
from fastapi import FastAPI, Request


class ScriptedCompletions:
    """`POST /v1/chat/completions`: first asks for `add_todo`, then reports the result."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.app = FastAPI()
        self.app.post("/v1/chat/completions")(self.complete)

    async def complete(self, request: Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append({"authorization": request.headers.get("authorization"), **body})
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if tool_results:
            content = tool_results[-1]["content"]
            # Chat Completions allows a string or a list of text parts here.
            if isinstance(content, list):
                content = "".join(part["text"] for part in content)
            created = json.loads(content)
            message: dict[str, Any] = {"role": "assistant", "content": f"Added todo #{created['id']}."}
            finish = "stop"
        else:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "add_todo", "arguments": json.dumps({"title": "Call the vet"})},
                    }
                ],
            }
            finish = "tool_calls"
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


@pytest.fixture
def completions() -> Iterator[tuple[ScriptedCompletions, str]]:
    server = ScriptedCompletions()
    with ServerThread(server.app) as thread:
        yield server, f"{thread.url}/v1"


def test_chat_runs_through_an_openai_compatible_server(
    backend: BackendProcess,
    make_user: Callable[[], User],
    chatbot: ChatbotFactory,
    completions: tuple[ScriptedCompletions, str],
) -> None:
    server, base_url = completions
    user = make_user()
    client = chatbot(
        openai_api_key="sk-local-test",
        openai_base_url=base_url,
        chat_model="local-llama",
        backend_url=backend.url,
    )

    response = client.post("/api/chat", json={"message": "remind me to call the vet"}, headers=user.headers)

    assert response.status_code == 200, response.text
    [todo] = user.todos()
    assert todo["title"] == "Call the vet"
    assert response.json()["reply"] == f"Added todo #{todo['id']}."
    first = server.requests[0]
    assert first["authorization"] == "Bearer sk-local-test"
    assert first["model"] == "local-llama"
    assert {tool["function"]["name"] for tool in first["tools"]} == {
        "list_todos",
        "add_todo",
        "update_todo",
        "complete_todo",
        "delete_todo",
    }
    # The user's backend token never reaches the model provider.
    assert user.token not in json.dumps(server.requests)
