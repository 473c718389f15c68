"""Chatting manages real todos: the agent's MCP tools reach the real backend as the user."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agents import FunctionTool
from conftest import BackendProcess, ChatbotFactory, User
from scripted import Call, Say, ScriptedModel, Seen


def test_chat_adds_and_completes_a_real_todo(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    alice = make_user()

    def complete_the_new_todo(seen: Seen) -> Call:
        created = seen.last_tool_output()
        assert created["title"] == "Buy oat milk", created
        return Call("complete_todo", {"todo_id": created["id"]})

    model = ScriptedModel(
        [
            Call("add_todo", {"title": "Buy oat milk", "priority": "high", "due_date": "2031-05-04"}),
            Say("Added 'Buy oat milk'."),
            complete_the_new_todo,
            lambda seen: Say(f"Done: {seen.last_tool_output()['title']}"),
        ]
    )
    client = chatbot(model=model, backend_url=backend.url)

    first = client.post("/api/chat", json={"message": "Remind me to buy oat milk"}, headers=alice.headers)
    assert first.status_code == 200, first.text
    assert first.json()["reply"] == "Added 'Buy oat milk'."
    [todo] = alice.todos()
    assert (todo["title"], todo["priority"], todo["due_date"], todo["done"]) == (
        "Buy oat milk",
        "high",
        "2031-05-04",
        False,
    )

    conversation_id = first.json()["conversation_id"]
    second = client.post(
        "/api/chat",
        json={"message": "I bought it", "conversation_id": conversation_id},
        headers=alice.headers,
    )
    assert second.status_code == 200, second.text
    assert second.json() == {"reply": "Done: Buy oat milk", "conversation_id": conversation_id}
    [todo] = alice.todos()
    assert todo["done"] is True

    # The second turn remembered the first: the model saw the earlier message and answer.
    remembered = [item.get("content") for item in model.seen[2].input if item.get("role") == "user"]
    assert remembered == ["Remind me to buy oat milk", "I bought it"]


def test_chat_lists_updates_and_deletes(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    bob = make_user()
    keep = bob.add_todo("Water the plants")
    drop = bob.add_todo("Cancel gym membership")
    model = ScriptedModel(
        [
            Call("list_todos", {"done": False}),
            lambda seen: [
                Call("update_todo", {"todo_id": keep["id"], "title": "Water the ferns", "priority": "low"}),
                Call("delete_todo", {"todo_id": drop["id"]}),
            ],
            lambda seen: Say(" | ".join(seen.tool_outputs())),
        ]
    )
    client = chatbot(model=model, backend_url=backend.url)

    response = client.post("/api/chat", json={"message": "tidy my list"}, headers=bob.headers)

    assert response.status_code == 200, response.text
    listed = model.seen[1].tool_outputs()[0]
    assert "Water the plants" in listed and "Cancel gym membership" in listed
    [remaining] = bob.todos()
    assert (remaining["id"], remaining["title"], remaining["priority"]) == (
        keep["id"],
        "Water the ferns",
        "low",
    )
    assert bob.todo_status(drop["id"]) == 404


def test_a_new_conversation_does_not_see_another_conversation(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    carol = make_user()
    model = ScriptedModel([Say("first"), Say("second")])
    client = chatbot(model=model, backend_url=backend.url)

    one = client.post("/api/chat", json={"message": "secret plan A"}, headers=carol.headers)
    two = client.post("/api/chat", json={"message": "hello"}, headers=carol.headers)

    assert one.status_code == two.status_code == 200
    assert one.json()["conversation_id"] != two.json()["conversation_id"]
    assert "secret plan A" not in str(model.seen[1].input)


def test_the_model_is_offered_no_way_to_name_a_user_or_token(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    dave = make_user()
    model = ScriptedModel([Say("hi")])
    client = chatbot(model=model, backend_url=backend.url)

    assert client.post("/api/chat", json={"message": "hi"}, headers=dave.headers).status_code == 200

    tools = {tool.name: tool for tool in model.seen[0].tools}
    assert set(tools) == {"list_todos", "add_todo", "update_todo", "complete_todo", "delete_todo"}
    for tool in tools.values():
        assert isinstance(tool, FunctionTool)
        parameters = set(tool.params_json_schema.get("properties", {}))
        assert not {
            p for p in parameters if any(w in p.lower() for w in ("user", "token", "auth", "owner"))
        }, (
            tool.name,
            parameters,
        )
    # Nor does the token appear anywhere in what the model is given.
    assert dave.token not in str(model.seen[0].input)


def test_concurrent_chats_of_different_users_never_cross(
    backend: BackendProcess, make_user: Callable[[], User], chatbot: ChatbotFactory
) -> None:
    users = {"alice": make_user(), "bob": make_user(), "carol": make_user()}

    def add_the_message_as_a_todo(seen: Seen) -> Call | Say:
        if seen.tool_outputs():
            return Say("added")
        message = next(item["content"] for item in reversed(seen.input) if item.get("role") == "user")
        return Call("add_todo", {"title": message})

    client = chatbot(model=ScriptedModel([], then=add_the_message_as_a_todo), backend_url=backend.url)
    requests = [(name, f"{name}-{n}") for n in range(4) for name in users]

    def send(request: tuple[str, str]) -> int:
        name, message = request
        return client.post("/api/chat", json={"message": message}, headers=users[name].headers).status_code

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        statuses = list(pool.map(send, requests))

    assert statuses == [200] * len(requests)
    for name, user in users.items():
        assert sorted(str(t["title"]) for t in user.todos()) == [f"{name}-{n}" for n in range(4)]
