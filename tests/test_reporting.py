"""The status document's parts: live rollouts read sparingly, services' state from cycles."""

from __future__ import annotations

from typing import Any

from reconciler.daemon import reporting


def _deployment(ready: int, image: str = "lumina/backend:abc") -> dict[str, Any]:
    return {
        "metadata": {"name": "backend", "generation": 2},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": image}]}}},
        "status": {
            "observedGeneration": 2,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


def test_live_rollouts_are_read_at_most_every_few_seconds_and_survive_api_errors() -> None:
    reads: list[str] = []
    answers: dict[str, Any] = {"backend": _deployment(1), "chatbot": None}

    def read(name: str) -> dict[str, Any] | None:
        reads.append(name)
        if name == "frontend":
            raise ConnectionError("the API server blinked")
        answer: dict[str, Any] | None = answers[name]
        return answer

    live = reporting.LiveRollouts(
        read, {"backend": "backend", "chatbot": "chatbot", "frontend": "frontend"}
    )
    assert live.states() == {
        "backend": "complete, 1/1 ready",
        "chatbot": "absent",
        "frontend": "unknown (ConnectionError)",
    }
    answers["backend"] = _deployment(0)
    assert live.states()["backend"] == "complete, 1/1 ready"  # cached: the page polls often
    assert len(reads) == 3
    live._at -= reporting.LIVE_SECONDS
    assert live.states()["backend"] == "in progress, 0/1 ready"
    assert len(reads) == 6
