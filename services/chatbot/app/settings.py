"""Chatbot settings, read once from the environment by `app.main.create_app`.

The variable names are a contract with the Helm chart (ConfigMap `chatbot` and Secret
`chatbot-secrets`), so there is no prefix: BACKEND_URL, OPENAI_API_KEY, OPENAI_BASE_URL,
CHAT_MODEL. The tuning knobs below have safe defaults and are rarely set.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_BACKEND_URL = "http://backend.lumina.svc.cluster.local:8000"


class Settings(BaseSettings):
    """Everything the chatbot reads from its environment."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    backend_url: str = DEFAULT_BACKEND_URL
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    chat_model: str = "gpt-4o-mini"

    # Every backend call is bounded so a dead or hung backend turns into a clear error
    # within seconds instead of a chat request that never returns.
    backend_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    backend_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # Upper bound for one whole agent run (model calls plus tool calls).
    chat_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    model_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    max_turns: int = Field(default=8, ge=1, le=50)
    # Chat turns at once, waiting ones, and messages per user (app.admission): beyond the
    # first two a 503, beyond the last a 429, both with Retry-After. The wait stays well
    # inside the frontend's 60 s deadline for a whole chat request.
    chat_concurrency: int = Field(default=8, ge=1, le=256)
    chat_queue_length: int = Field(default=16, ge=0, le=10_000)
    chat_queue_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    chat_messages_per_user: int = Field(default=20, ge=1)
    chat_messages_window_seconds: float = Field(default=60.0, gt=0, le=24 * 3600)
    # Conversation memory lives in this process only; both bounds keep it from growing
    # without limit under many users or very long chats.
    memory_max_conversations: int = Field(default=1000, ge=1)
    memory_max_items: int = Field(default=40, ge=2)

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        # An optional Secret key rendered as an empty string means "not configured".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("openai_base_url", mode="before")
    @classmethod
    def _blank_base_url_is_default(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("backend_url")
    @classmethod
    def _backend_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"BACKEND_URL must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @property
    def chat_off_reason(self) -> str | None:
        """Why chat cannot work with these settings, or None when a model is configured."""
        if self.openai_api_key is None:
            return "Chat is off: no model is configured (OPENAI_API_KEY is not set)."
        return None
