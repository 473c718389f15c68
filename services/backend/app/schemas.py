"""Request and response bodies of the HTTP API (the shared contract of the services).

Limits live here so that a violation is a 422 naming the field, before any
handler or database code runs.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
)


def _encodable(value: str) -> str:
    # JSON may carry lone surrogates ("\ud800") that no database or hash can encode.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


Unicode = AfterValidator(_encodable)
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Unicode
]
Description = Annotated[str, StringConstraints(max_length=2000), Unicode]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), Unicode]
Email = Annotated[str, StringConstraints(max_length=320), Unicode]
Priority = Literal["low", "medium", "high"]


class _Body(BaseModel):
    # Unknown fields are mistakes of the caller (e.g. "titel"), not something to ignore.
    model_config = ConfigDict(extra="forbid")


class Credentials(_Body):
    email: Annotated[EmailStr, Field(max_length=320)]
    password: Password


class LoginRequest(_Body):
    # Not validated as an address or against the password rules: a malformed email or
    # a short password simply does not match any account, and says so with a 401.
    email: Email
    password: Annotated[str, StringConstraints(max_length=128), Unicode]


class UserOut(BaseModel):
    id: int
    email: str


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  # the OAuth2 scheme name


class PasswordResetRequest(_Body):
    email: Email


class PasswordResetConfirm(_Body):
    token: Annotated[str, StringConstraints(min_length=1, max_length=4096), Unicode]
    new_password: Password


class TodoCreate(_Body):
    title: Title
    description: Description | None = None
    due_date: dt.date | None = None
    priority: Priority = "medium"


class TodoUpdate(_Body):
    """Partial update: only the fields present in the body change.

    ``None`` for title, priority and done means "absent": sending them as null is a
    422, since a todo always has them (description and due_date may be cleared).
    """

    # A None default without "| None" in the type: left out is fine (the default is
    # never validated), an explicit null is a 422 on that field, and the OpenAPI schema
    # says exactly that. The ignores are for that deliberate mismatch only.
    title: Title = None  # type: ignore[assignment]
    description: Description | None = None
    due_date: dt.date | None = None
    priority: Priority = None  # type: ignore[assignment]
    done: bool = None  # type: ignore[assignment]


class TodoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    description: str | None
    due_date: dt.date | None
    priority: Priority
    done: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class TodoPage(BaseModel):
    items: list[TodoOut]
    total: int
    limit: int
    offset: int


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready"]
    revision: str
    mail: Literal["on", "off"]


class Detail(BaseModel):
    detail: str


# The shape FastAPI's ``responses=`` parameter takes, for documenting error statuses.
Responses = dict[int | str, dict[str, Any]]
