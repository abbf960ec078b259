"""Operations: liveness, readiness, Prometheus metrics, and the reco catalogue."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from skydriver_api import metrics
from skydriver_api.queues import broker_reachable
from skyscan.physics.recos.registry import RECOS

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Readiness: MongoDB and RabbitMQ are reachable, else 503 naming which is not."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app.state.db.ping(), 3)
        checks["mongodb"] = "ok"
    except Exception as err:
        checks["mongodb"] = f"unreachable: {type(err).__name__}"
    ok = await asyncio.to_thread(broker_reachable, request.app.state.settings)
    checks["rabbitmq"] = "ok" if ok else "unreachable"
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
    await metrics.refresh(request.app.state.db, request.app.state.settings)
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/recos", tags=["scans"])
async def list_recos() -> dict[str, Any]:
    return {"recos": [{"name": name, "description": cls.description} for name, cls in sorted(RECOS.items())]}
