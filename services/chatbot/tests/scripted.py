"""A scripted language model: the ONLY stand-in in the chatbot's tests.

A real model needs a paid API (and network access this CI does not have), so the tests
replace it behind the Agents SDK's own `agents.Model` interface, the seam the SDK
offers for exactly this. Everything on the other side of that seam is real: the Agents
SDK runner, the MCP client and server, the todo tools, and a real backend process.

Each scripted step receives what the model would see (its input items and the tool
schemas it was offered) and returns either tool calls or a final text, so a script can
react to real tool results (e.g. use the id of the todo the backend just created).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from agents import Model, ModelResponse, ModelSettings, ModelTracing, Tool, Usage
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import TResponseInputItem, TResponseStreamEvent
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openai.types.responses.response_prompt_param import ResponsePromptParam


@dataclass(frozen=True)
class Call:
    """The model asks to run tool `name` with `arguments`."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Say:
    """The model answers the user with `text` (ends the run)."""

    text: str


@dataclass(frozen=True)
class Wait:
    """The model takes `seconds` to answer (a slow provider); then the next step plays."""

    seconds: float


@dataclass
class Seen:
    """What the model was given on one call."""

    input: list[dict[str, Any]]
    tools: list[Tool]

    def tool_outputs(self) -> list[str]:
        """The outputs of the tool calls so far in this run, oldest first."""
        return [
            _text(item.get("output")) for item in self.input if item.get("type") == "function_call_output"
        ]

    def last_tool_output(self) -> Any:
        """The newest tool output, decoded from JSON when it is JSON."""
        raw = self.tool_outputs()[-1]
        try:
            return json.loads(raw)
        except ValueError:
            return raw


def _text(output: Any) -> str:
    # Tool outputs are plain strings within a run but content parts once replayed
    # from conversation memory.
    if isinstance(output, list):
        return "".join(str(part.get("text", "")) for part in output if isinstance(part, dict))
    return str(output)


Step = Call | Say | Wait | list[Call] | Callable[[Seen], "Call | Say | list[Call]"]


class ScriptedModel(Model):
    """Plays `steps` in order, one per model call; fails loudly if the script runs out.

    A plain class, not a dataclass: the SDK inspects dataclass models field by field.
    """

    def __init__(self, steps: list[Step], *, then: Step | None = None) -> None:
        self.steps = list(steps)
        self.then = then  # played on every call once `steps` are used up, if given
        self.seen: list[Seen] = []

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else input
        seen = Seen(input=[dict(item) for item in items], tools=list(tools))
        self.seen.append(seen)
        if not self.steps and self.then is not None:
            self.steps.append(self.then)
        if not self.steps:
            raise AssertionError(f"scripted model called more often than scripted; input: {seen.input}")
        step = self.steps.pop(0)
        while isinstance(step, Wait):
            await asyncio.sleep(step.seconds)
            step = self.steps.pop(0) if self.steps else Say("")
        played = step(seen) if callable(step) else step
        calls = played if isinstance(played, list) else [played]
        output: list[Any] = []
        for action in calls:
            if isinstance(action, Say):
                output.append(
                    ResponseOutputMessage(
                        id=f"msg_{uuid.uuid4().hex}",
                        type="message",
                        role="assistant",
                        status="completed",
                        content=[ResponseOutputText(type="output_text", text=action.text, annotations=[])],
                    )
                )
            else:
                call_id = f"call_{uuid.uuid4().hex}"
                output.append(
                    ResponseFunctionToolCall(
                        id=call_id,
                        call_id=call_id,
                        type="function_call",
                        name=action.name,
                        arguments=json.dumps(action.arguments),
                    )
                )
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: ResponsePromptParam | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the chatbot does not stream; the scripted model neither")
