"""The ASGI application ``app.main:app``: wiring of settings, database, migrations and routes.

Startup (lifespan) refuses to run without a valid configuration or a writable
database, migrates the schema to the newest revision, then serves; shutdown (uvicorn
turns SIGTERM into it after in-flight requests finish) closes the database.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app import migrating
from app.database import Database
from app.routes import auth, health, todos
from app.runtime import Runtime
from app.settings import Settings, load_settings

log = logging.getLogger("app")

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; ``settings=None`` reads them from the environment at startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging()
        config = settings if settings is not None else load_settings()
        database = Database(config.database_url, busy_timeout_ms=config.sqlite_busy_timeout_ms)
        try:
            migrating.upgrade(database)
            heads = migrating.head_revisions()
            app.state.runtime = Runtime(settings=config, database=database, heads=heads)
            log.info(
                "backend ready: database %s at revision %s, mail %s",
                database.path,
                ",".join(sorted(heads)),
                "on" if config.mail_enabled else "off",
            )
            yield
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
    return app


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
