"""Runtime settings read from the environment (the chart's ConfigMap and Secret).

`main.create_app` loads them once at startup; a missing or bad value stops the
process with a message naming the variable, because a half-configured auth
service is worse than one that does not start.
"""

from __future__ import annotations

import logging

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

# HS256 keys shorter than the hash output weaken the signature; warn, do not refuse,
# because the value is chosen by whoever installs the chart.
_RECOMMENDED_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """The environment does not describe a service that can run; the message says what to fix."""


class Settings(BaseSettings):
    """Every knob the backend reads; names are the environment variables of the contract."""

    # Empty strings come from ConfigMaps that list a key without a value: treat them as unset.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    database_url: str = Field(default="sqlite:////data/lumina.db", alias="DATABASE_URL")
    jwt_secret_key: SecretStr = Field(alias="JWT_SECRET_KEY")
    jwt_expire_minutes: int = Field(default=60, ge=1, le=60 * 24 * 30, alias="JWT_EXPIRE_MINUTES")
    password_reset_expire_minutes: int = Field(
        default=15, ge=1, le=24 * 60, alias="PASSWORD_RESET_EXPIRE_MINUTES"
    )
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0, alias="SQLITE_BUSY_TIMEOUT_MS")

    # Password hashing (app.hashing): the memory all concurrent hashes may hold is
    # HASH_MEMORY_SHARE of the memory limit; beyond that, HASH_QUEUE_LENGTH requests
    # wait up to HASH_QUEUE_TIMEOUT_SECONDS, the rest get 503 with Retry-After.
    memory_limit_bytes: int | None = Field(default=None, gt=0, alias="MEMORY_LIMIT_BYTES")
    hash_memory_share: float = Field(default=0.25, gt=0, le=0.8, alias="HASH_MEMORY_SHARE")
    hash_concurrency: int | None = Field(default=None, ge=1, alias="HASH_CONCURRENCY")
    hash_queue_length: int = Field(default=64, ge=0, le=10_000, alias="HASH_QUEUE_LENGTH")
    hash_queue_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, alias="HASH_QUEUE_TIMEOUT_SECONDS"
    )
    # Sign-in and sign-up attempts (app.throttle), each limit per window; beyond: 429.
    auth_attempts_per_client: int = Field(default=20, ge=1, alias="AUTH_ATTEMPTS_PER_CLIENT")
    auth_attempts_per_account: int = Field(default=5, ge=1, alias="AUTH_ATTEMPTS_PER_ACCOUNT")
    auth_attempts_window_seconds: float = Field(
        default=60.0, gt=0, le=24 * 3600, alias="AUTH_ATTEMPTS_WINDOW_SECONDS"
    )
    # Whose X-Forwarded-For is believed: IPs, networks or host names, comma-separated.
    trusted_proxies: str = Field(default="", alias="TRUSTED_PROXIES")

    smtp_host: str | None = Field(default=None, alias="SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_from: str = Field(default="Lumina Todo <no-reply@lumina.local>", alias="SMTP_FROM")
    smtp_starttls: bool = Field(default=True, alias="SMTP_STARTTLS")
    smtp_timeout_seconds: float = Field(default=10.0, gt=0, alias="SMTP_TIMEOUT_SECONDS")

    @field_validator("jwt_secret_key")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be blank")
        return value

    @property
    def mail_enabled(self) -> bool:
        return self.smtp_host is not None


def load_settings() -> Settings:
    """Read the environment, turning validation errors into one readable ConfigError."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            if error["type"] == "missing" and name == "JWT_SECRET_KEY":
                problems.append(
                    "JWT_SECRET_KEY is not set: the backend signs login tokens with it and "
                    "refuses to start without one (set it from the Secret 'backend-secrets')"
                )
            else:
                problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid backend configuration: " + "; ".join(problems)) from None
    if len(settings.jwt_secret_key.get_secret_value()) < _RECOMMENDED_SECRET_LENGTH:
        log.warning(
            "JWT_SECRET_KEY is shorter than %d characters; use a longer random value",
            _RECOMMENDED_SECRET_LENGTH,
        )
    return settings
