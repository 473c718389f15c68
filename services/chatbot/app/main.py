"""The chatbot's HTTP API: `GET /health`, `GET /ready`, `POST /api/chat`.

`app` is what uvicorn serves (`uvicorn app.main:app --port 8001`). `create_app` builds it
from settings and lets tests pass the one thing that cannot run here, the language model.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from agents import Model
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from app import admission, backend, chatting, memory, settings, todo_tools

# uvicorn's logger, so these lines share its format and level in the container logs.
log = logging.getLogger("uvicorn.error")

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=4000)
    conversation_id: str | None = Field(default=None, pattern=CONVERSATION_ID_PATTERN)


class ChatResponse(BaseModel):
    reply: str
    conversation_id: str


class Detail(BaseModel):
    detail: str


class Status(BaseModel):
    status: str


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "The request body is not valid JSON.",
        401: "Missing or invalid bearer token.",
        429: "This user sent too many messages; Retry-After says when to send the next.",
        502: "The backend or the language model failed.",
        503: "Chat is off (no model configured), the backend is unreachable, or every chat "
        "slot is busy (then with Retry-After).",
        504: "The assistant did not finish in time.",
    }
    retry_after = {
        "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer"}}
    }
    return {
        code: {
            "model": Detail,
            "description": described[code],
            **({"headers": retry_after} if code in (429, 503) else {}),
        }
        for code in codes
    }


bearer = HTTPBearer(auto_error=False, description="The end user's backend JWT.")


def create_app(config: settings.Settings | None = None, *, model: Model | None = None) -> FastAPI:
    """Build the app. `model` replaces the one built from OPENAI_* settings (tests)."""
    config = config or settings.Settings()
    model = model or chatting.build_model(config)
    chat_off_reason = None if model is not None else config.chat_off_reason
    client = backend.BackendClient(
        config.backend_url,
        timeout=config.backend_timeout_seconds,
        connect_timeout=config.backend_connect_timeout_seconds,
    )
    todo_server = todo_tools.build_todo_server(client)
    mcp_app = todo_tools.asgi_app(todo_server)
    engine = chatting.ChatEngine(model=model, mcp_app=mcp_app, config=config) if model else None
    gate = admission.ChatGate(
        slots=config.chat_concurrency,
        queue=config.chat_queue_length,
        max_wait=config.chat_queue_timeout_seconds,
    )
    rate = admission.UserRate(
        messages=config.chat_messages_per_user, window=config.chat_messages_window_seconds
    )
    conversations = memory.ConversationMemory(
        max_conversations=config.memory_max_conversations,
        max_items=config.memory_max_items,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if chat_off_reason:
            log.warning("%s", chat_off_reason)
        try:
            async with todo_server.session_manager.run():
                yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="Lumina chatbot",
        version="1.0.0",
        summary="Chat with an assistant that manages your Lumina todos.",
        lifespan=lifespan,
    )
    app.state.chat_gate = gate

    @app.get("/health", response_model=Status, tags=["health"])
    async def health() -> Status:
        """Liveness: 200 while the process serves requests."""
        return Status(status="ok")

    @app.get("/ready", response_model=Status, tags=["health"], responses=_responses(503))
    async def ready() -> Status:
        """Readiness: 200 when a model is configured and the backend answers."""
        if chat_off_reason:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, chat_off_reason)
        try:
            await client.health()
        except backend.BackendError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, exc.message) from exc
        return Status(status="ready")

    @app.post(
        "/api/chat",
        response_model=ChatResponse,
        tags=["chat"],
        responses=_responses(400, 401, 429, 502, 503, 504),
    )
    async def chat(
        request: ChatRequest,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> ChatResponse:
        """Send a message; the assistant may list, add, change or delete your todos."""
        if credentials is None or not credentials.credentials.strip():
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "Not authenticated: send the user's token as 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if engine is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, chat_off_reason)
        token = credentials.credentials.strip()
        # Checking the token first turns a bad token into a 401 and a dead backend into
        # a fast 503, before any model call is paid for.
        try:
            user = await client.current_user(token)
        except backend.BackendRejected as exc:
            if exc.status_code == status.HTTP_401_UNAUTHORIZED:
                raise HTTPException(
                    status.HTTP_401_UNAUTHORIZED,
                    "Invalid or expired token: sign in again.",
                    headers={"WWW-Authenticate": "Bearer"},
                ) from exc
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, exc.message) from exc
        except backend.BackendError as exc:
            raise HTTPException(exc.status_code, exc.message) from exc

        conversation_id = request.conversation_id or uuid.uuid4().hex
        key = (user.id, conversation_id)
        try:
            rate.take(user.id)
            async with gate.slot(), conversations.lock(key):
                try:
                    answer = await engine.reply(
                        token=token, history=conversations.load(key), message=request.message
                    )
                except chatting.ChatError as exc:
                    log.warning("chat failed for user %s: %s", user.id, exc.message)
                    raise HTTPException(exc.status_code, exc.message) from exc
                conversations.store(key, answer.items)
        except admission.Refused as exc:
            raise HTTPException(
                exc.status_code, exc.detail, headers={"Retry-After": str(exc.retry_after)}
            ) from exc
        return ChatResponse(reply=answer.text, conversation_id=conversation_id)

    return app


app = create_app()
