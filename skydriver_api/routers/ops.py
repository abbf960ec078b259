"""Operations: liveness, readiness, Prometheus metrics, and the reco catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from skyscan.physics.recos.registry import RECOS

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: MongoDB and RabbitMQ are reachable, else 503 naming which is not."""
    checks = await request.app.state.readiness.checks()
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "Prometheus text exposition format"}},
)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics, from a snapshot the API refreshes in the background (no per-request
    database or broker work)."""
    return Response(request.app.state.metrics.text(), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/recos", tags=["scans"])
async def list_recos(request: Request) -> dict[str, Any]:
    """The recos this service runs (its operator's choice) and what they do."""
    enabled = request.app.state.settings.recos()
    return {
        "recos": [
            {"name": name, "description": cls.description}
            for name, cls in sorted(RECOS.items())
            if name in enabled
        ]
    }
