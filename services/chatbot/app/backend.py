"""The chatbot's only way to reach the Lumina backend's HTTP API.

Used by the chat endpoint (to check the caller's token), by `/ready`, and by the MCP todo
tools in `app.todo_tools`. Every call carries the *end user's* bearer token: the chatbot
holds no credential of its own that could read anyone's data. Transport failures and
unexpected answers are translated here into `BackendError`s that say what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx2


class BackendError(Exception):
    """The backend could not be used; `status_code` is what the chatbot answers with."""

    def __init__(self, message: str, *, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class BackendUnavailable(BackendError):
    """The backend did not answer in time or refused the connection."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=503)


class BackendRejected(BackendError):
    """The backend answered with a 4xx the caller should see (bad token, no such todo…)."""


@dataclass(frozen=True)
class User:
    """Who the bearer token belongs to, as the backend says (`GET /api/auth/me`)."""

    id: int
    email: str


class BackendClient:
    """Thin async client for the backend's `/api` routes, one shared connection pool."""

    def __init__(self, base_url: str, *, timeout: float, connect_timeout: float) -> None:
        self.base_url = base_url
        self._http = httpx2.AsyncClient(
            base_url=base_url,
            timeout=httpx2.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        """Call the backend and return its decoded JSON (None for an empty body).

        4xx answers raise `BackendRejected` with the backend's own `detail`; network
        failures and timeouts raise `BackendUnavailable`; 5xx raise `BackendError(502)`.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = await self._http.request(method, path, headers=headers, json=json, params=params)
        except httpx2.TimeoutException as exc:
            raise BackendUnavailable(
                f"The todo backend at {self.base_url} did not answer in time ({type(exc).__name__})."
            ) from exc
        except httpx2.TransportError as exc:
            raise BackendUnavailable(
                f"The todo backend at {self.base_url} is unreachable ({type(exc).__name__}: {exc})."
            ) from exc
        if response.status_code >= 500:
            raise BackendError(
                f"The todo backend at {self.base_url} failed: {method} {path} answered "
                f"HTTP {response.status_code}.",
                status_code=502,
            )
        if response.status_code >= 400:
            raise BackendRejected(_detail(response), status_code=response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(
                f"The todo backend at {self.base_url} sent a non-JSON answer to {method} {path}.",
                status_code=502,
            ) from exc

    async def current_user(self, token: str) -> User:
        """Resolve a bearer token to its user; `BackendRejected(401)` if it is not valid."""
        body = await self.request("GET", "/api/auth/me", token=token)
        try:
            return User(id=int(body["id"]), email=str(body["email"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise BackendError(
                "The todo backend's /api/auth/me answer has no id/email.", status_code=502
            ) from exc

    async def health(self) -> None:
        """Raise a `BackendError` unless the backend's liveness endpoint answers 200."""
        await self.request("GET", "/api/health", token=None)


def _detail(response: httpx2.Response) -> str:
    """The backend's error message, in the FastAPI `{"detail": ...}` shape when it has one."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, str):
            return detail
        # Validation errors: name each failing field, as the backend does.
        if isinstance(detail, list):
            parts = []
            for error in detail:
                if isinstance(error, dict):
                    loc = ".".join(str(p) for p in error.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {error.get('msg', 'invalid')}")
            if parts:
                return "; ".join(parts)
    return f"HTTP {response.status_code}"
