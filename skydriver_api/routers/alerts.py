"""Realtime alert route: ``POST /api/v1/alerts`` (see :mod:`skydriver_api.services.alerts`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Response

from skydriver_api.api_docs import AUTH, error_responses
from skydriver_api.auth import Principal, require
from skydriver_api.dependencies import ScanServiceDep
from skydriver_api.models import AlertAccepted
from skydriver_api.services import alerts
from skydriver_api.services.scans import scan_links

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=error_responses(*AUTH))


@router.post(
    "/alerts",
    status_code=201,
    response_model=AlertAccepted,
    responses={
        200: {"model": AlertAccepted, "description": "a duplicate: the existing scan"},
        **error_responses((409, "A concurrent copy of this alert failed; retry"), 413, 422),
    },
)
async def submit_alert(
    response: Response,
    scans: ScanServiceDep,
    body: dict[str, Any] = Body(...),
    principal: Principal = require("submitter"),
) -> AlertAccepted:
    """Scan a realtime alert at priority 100 with the configured reco, nsides and workers. The same
    (run_id, event_id, revision) again returns the scan of the first (200, ``duplicate: true``)."""
    outcome = await alerts.submit(scans, body, principal)
    if outcome.duplicate:
        response.status_code = 200
    return AlertAccepted(
        scan_id=outcome.scan_id,
        duplicate=outcome.duplicate,
        alert=outcome.alert,
        links=scan_links(outcome.scan_id),
    )
