"""The ASGI application ``app.main:app``: wiring of settings, database, migrations and routes.

Startup (lifespan) refuses to run without a valid configuration or a writable
database, migrates the schema to the newest revision, then serves; shutdown (uvicorn
turns SIGTERM into it after in-flight requests finish) closes the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app import backup, hashing, migrating, throttle
from app.database import Database
from app.routes import auth, health, todos
from app.runtime import Runtime
from app.settings import Settings, load_settings
from app.sqlite_urls import sqlite_file

log = logging.getLogger("app")

MAX_BODY_BYTES = 1024 * 1024


def _copy_trial_data(database_url: str) -> None:
    """In a trial start (the reconciler's pod of a new image, on a copy of the data):
    put the backup it names where DATABASE_URL points, before anything opens it.

    Only into an empty place — a trial's scratch volume — so live data is never
    overwritten, whatever the environment says. A backup that fails its integrity
    check stops the start, and so fails the trial with that reason in its log.
    """
    named = os.environ.get("LUMINA_TRIAL_BACKUP")
    if named is None:
        return
    target = sqlite_file(database_url)
    if target.exists():
        log.warning("trial start: %s exists already; not copying %s over it", target, named)
        return
    made = backup.trial_copy(target, Path(named) if named else None)
    log.info("trial start: %s", json.dumps(made))


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings=None`` reads them from the environment at startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging()
        config = settings if settings is not None else load_settings()
        _copy_trial_data(config.database_url)
        database = Database(config.database_url, busy_timeout_ms=config.sqlite_busy_timeout_ms)
        try:
            migrating.upgrade(database)
            heads = migrating.head_revisions()
            runtime = Runtime.start(config, database, heads)
            app.state.runtime = runtime
            log.info(
                "backend ready: database %s at revision %s, mail %s; password hashes: %s",
                database.path,
                ",".join(sorted(heads)),
                "on" if config.mail_enabled else "off",
                runtime.hashing.budget.describe(),
            )
            try:
                yield
            finally:
                runtime.hashing.close()
        finally:
            database.close()
            log.info("database closed")

    app = FastAPI(
        title="Lumina Todo backend",
        version="1.0.0",
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url="/api/redoc",
        # Larger bodies get 413 before any parsing; no legitimate todo comes close.
        max_body_size=MAX_BODY_BYTES,
    )
    api = APIRouter(prefix="/api")
    api.include_router(health.router)
    api.include_router(auth.router)
    api.include_router(todos.router)
    app.include_router(api)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(hashing.Overloaded, _refused)
    app.add_exception_handler(throttle.TooManyAttempts, _refused)
    return app


async def _refused(_request: Request, exc: Exception) -> JSONResponse:
    """503 (hashing is saturated) or 429 (too many attempts), saying when to come back."""
    assert isinstance(exc, hashing.Overloaded | throttle.TooManyAttempts)
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": exc.detail},
        headers={"Retry-After": str(exc.retry_after)},
    )


class _AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped, so that any str, even a lone surrogate, encodes."""

    def render(self, content: Any) -> bytes:  # noqa: ANN401  # JSONResponse's signature
        return json.dumps(content, ensure_ascii=True, allow_nan=False).encode("ascii")


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    # FastAPI's own handler echoes the rejected input back as UTF-8, which fails (500)
    # for exactly the input rejected as not being valid Unicode.
    assert isinstance(exc, RequestValidationError)
    return _AsciiJSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})


def _configure_logging() -> None:
    # uvicorn configures only its own loggers; without this the app's startup and
    # mail messages would be dropped. A host that set up logging keeps its own.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")


app = create_app()
