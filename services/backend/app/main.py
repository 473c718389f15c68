"""The ASGI application ``app.main:app``: wiring of settings, database, migrations and routes.

Startup (lifespan) refuses to run without a valid configuration or a writable
database, migrates the schema to the newest revision, then serves; shutdown (uvicorn
turns SIGTERM into it after in-flight requests finish) closes the database.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI

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
                database.path or "in memory",
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
    return app


def _configure_logging() -> None:
    # uvicorn configures only its own loggers; without this the app's startup and
    # mail messages would be dropped. A host that set up logging keeps its own.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")


app = create_app()
