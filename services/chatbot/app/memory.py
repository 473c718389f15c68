"""Bounded in-memory conversation history, keyed by (user id, conversation id).

The chat endpoint loads a conversation's items before an agent run and stores the run's
full input list afterwards. Keying by user as well as conversation id means a guessed or
leaked conversation id never shows one user another user's chat. Memory is per process:
a restart (or a second replica) starts conversations afresh, which is acceptable for a
todo assistant and keeps the chatbot stateless as far as Kubernetes is concerned.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

Item = dict[str, Any]
Key = tuple[int, str]


class ConversationMemory:
    """At most `max_conversations` conversations (least recently used evicted first),
    each trimmed to its last `max_items` items, cut only at the start of a user turn."""

    def __init__(self, *, max_conversations: int, max_items: int) -> None:
        self._max_conversations = max_conversations
        self._max_items = max_items
        self._conversations: OrderedDict[Key, list[Item]] = OrderedDict()
        self._locks: dict[Key, asyncio.Lock] = {}

    def lock(self, key: Key) -> asyncio.Lock:
        """A lock per conversation, so two messages in one conversation run one at a time
        and neither overwrites the other's history."""
        if key not in self._locks and len(self._locks) >= 2 * self._max_conversations:
            # Failed turns leave locks for conversations never stored; drop idle ones.
            for idle in [
                k for k, lock in self._locks.items() if not lock.locked() and k not in self._conversations
            ]:
                del self._locks[idle]
        return self._locks.setdefault(key, asyncio.Lock())

    def load(self, key: Key) -> list[Item]:
        items = self._conversations.get(key)
        if items is None:
            return []
        self._conversations.move_to_end(key)
        return list(items)

    def store(self, key: Key, items: list[Item]) -> None:
        self._conversations[key] = _trim(items, self._max_items)
        self._conversations.move_to_end(key)
        while len(self._conversations) > self._max_conversations:
            evicted, _ = self._conversations.popitem(last=False)
            lock = self._locks.get(evicted)
            if lock is not None and not lock.locked():
                del self._locks[evicted]

    def __len__(self) -> int:
        return len(self._conversations)


def _trim(items: list[Item], max_items: int) -> list[Item]:
    """The newest `max_items` items, starting at a user message.

    Starting anywhere else could leave a tool result without the tool call it answers,
    which models reject.
    """
    if len(items) <= max_items:
        return list(items)
    kept = items[-max_items:]
    for index, item in enumerate(kept):
        if item.get("role") == "user":
            return kept[index:]
    # One turn longer than the whole budget: keep nothing rather than a broken fragment.
    return []
