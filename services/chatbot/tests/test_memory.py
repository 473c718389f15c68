"""Conversation memory stays bounded and never keeps half a tool exchange."""

from __future__ import annotations

from app import memory


def turn(n: int) -> list[memory.Item]:
    """One user turn with a tool call, its output and the answer: four items."""
    return [
        {"role": "user", "content": f"message {n}"},
        {"type": "function_call", "call_id": f"c{n}", "name": "list_todos", "arguments": "{}"},
        {"type": "function_call_output", "call_id": f"c{n}", "output": "[]"},
        {"role": "assistant", "content": f"answer {n}"},
    ]


def test_long_conversations_keep_their_newest_whole_turns() -> None:
    store = memory.ConversationMemory(max_conversations=10, max_items=6)
    items = [item for n in range(5) for item in turn(n)]

    store.store((1, "c"), items)

    kept = store.load((1, "c"))
    # 6 items would start mid-turn (at a tool output); the cut moves to the next user turn.
    assert kept == turn(4)


def test_least_recently_used_conversations_are_evicted() -> None:
    store = memory.ConversationMemory(max_conversations=2, max_items=40)
    store.store((1, "a"), turn(1))
    store.store((1, "b"), turn(2))
    store.load((1, "a"))  # "a" is now the most recently used
    store.store((2, "c"), turn(3))

    assert len(store) == 2
    assert store.load((1, "b")) == []
    assert store.load((1, "a")) == turn(1)


def test_the_same_conversation_id_is_separate_per_user() -> None:
    store = memory.ConversationMemory(max_conversations=10, max_items=40)
    store.store((1, "shared-id"), turn(1))

    assert store.load((2, "shared-id")) == []


def test_locks_of_conversations_never_stored_do_not_pile_up() -> None:
    store = memory.ConversationMemory(max_conversations=3, max_items=40)

    for n in range(100):  # e.g. turns that all failed before anything was stored
        store.lock((1, f"failed-{n}"))

    assert len(store._locks) <= 2 * 3
