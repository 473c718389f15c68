"""Probes: liveness (the process answers) and readiness (database up, schema at head)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from app import migrating
from app.runtime import RuntimeDep
from app.schemas import Detail, Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    # Deliberately touches nothing: a slow database must not get the pod restarted.
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Detail, "description": "Why the backend cannot serve yet"}},
)
def ready(runtime: RuntimeDep) -> Readiness:
    reason = migrating.pending_reason(runtime.database, runtime.heads)
    if reason is not None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, reason)
    return Readiness(
        status="ready",
        revision=",".join(sorted(runtime.heads)),
        mail="on" if runtime.settings.mail_enabled else "off",
    )
