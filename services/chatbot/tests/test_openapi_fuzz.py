"""Schemathesis fuzzes the chatbot's own OpenAPI description over real HTTP.

Two chatbots run in uvicorn on free ports against the real backend: one with the scripted
model (every valid request really runs the agent and its MCP tools), one with chat off.
Each generated request goes to both, carrying a real user's token. The only 5xx allowed
is the documented 503 for "chat is off"; answers must match the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
import schemathesis
from conftest import BackendProcess, ServerThread, User
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from scripted import Call, Say, ScriptedModel

from app import main
from app import settings as chatbot_settings

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def model() -> ScriptedModel:
    # Every run lists the user's todos, then answers: the agent and MCP path is exercised.
    return ScriptedModel([], then=lambda seen: Say("ok") if seen.tool_outputs() else Call("list_todos", {}))


@pytest.fixture(scope="module")
def servers(backend: BackendProcess, model: ScriptedModel) -> Iterator[dict[str, str]]:
    # One user sends every fuzzed message: no per-user limit in the way.
    chat_on = main.create_app(
        chatbot_settings.Settings(backend_url=backend.url, chat_messages_per_user=1_000_000), model=model
    )
    chat_off = main.create_app(chatbot_settings.Settings(backend_url=backend.url, openai_api_key=None))
    with ServerThread(chat_on) as on, ServerThread(chat_off) as off:
        yield {"on": on.url, "off": off.url}


@pytest.fixture(scope="module")
def user(backend: BackendProcess) -> User:
    from conftest import register

    return register(backend.url)


# The document the app serves at /openapi.json. Loaded eagerly because schemathesis'
# fixture-based (lazy) loader does not work with this pytest version.
schema = schemathesis.openapi.from_dict(main.app.openapi())


def only_documented_503(ctx: Any, response: Any, case: Any) -> bool | None:
    """No 5xx except a 503 that the operation documents and that says why."""
    if response.status_code < 500:
        return None
    documented = case.operation.definition.raw.get("responses", {})
    assert response.status_code == 503 and "503" in documented, (
        f"{case.operation.label} answered {response.status_code}: {response.text[:500]}"
    )
    assert response.json().get("detail"), "a 503 must say why in 'detail'"
    return None


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
def test_the_api_matches_its_schema_and_never_fails(
    case: Any, servers: dict[str, str], user: User, backend: BackendProcess
) -> None:
    for base_url in servers.values():
        case.call_and_validate(
            base_url=base_url,
            headers=user.headers,
            excluded_checks=[not_a_server_error],
            additional_checks=[only_documented_503],
            timeout=30,
        )


def test_the_fuzzing_reached_the_agent_and_its_tools(
    servers: dict[str, str], user: User, model: ScriptedModel
) -> None:
    # Runs after the fuzz test: guards it against silently testing only 401/422 paths.
    fuzzed_runs = [seen for seen in model.seen if seen.tool_outputs()]
    assert len(fuzzed_runs) >= 3, "the fuzzed requests never got as far as a tool call"
    assert all('"total"' in seen.tool_outputs()[-1] for seen in fuzzed_runs)
    response = httpx2.post(
        f"{servers['on']}/api/chat", json={"message": "hi"}, headers=user.headers, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.json()["reply"] == "ok"
