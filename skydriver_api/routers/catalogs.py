"""Catalog routes: submit (JSON or JSON Lines), status, and a zip of every event's products
(see :mod:`skydriver_api.services.catalogs`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from skydriver_api.api_docs import AUTH, error_responses
from skydriver_api.auth import Principal, require
from skydriver_api.dependencies import DatabaseDep, ScanServiceDep
from skydriver_api.models import CatalogRequest, CatalogStatus
from skydriver_api.services import catalogs
from skydriver_api.settings import CATALOG_PRIORITY
from skyscan.skymap import exports

router = APIRouter(prefix="/api/v1", tags=["catalogs"], responses=error_responses(*AUTH))


@router.post(
    "/catalogs",
    status_code=201,
    responses=error_responses((413, "More events, or a larger body, than the limits allow"), 422),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": CatalogRequest.model_json_schema(ref_template="#/components/schemas/{model}")
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "one skydriver.event/1 per line"}
                },
            }
        }
    },
)
async def submit_catalog(
    request: Request,
    scans: ScanServiceDep,
    principal: Principal = require("submitter"),
    name: Annotated[str, Query(max_length=200, description="JSON Lines uploads only")] = "",
    reco: Annotated[str, Query(max_length=64, description="JSON Lines uploads only")] = "pandel-mpe",
    nsides: Annotated[str | None, Query(max_length=200, description="JSON Lines uploads only")] = None,
    workers: Annotated[int, Query(ge=1, le=10000, description="JSON Lines uploads only")] = 2,
    profile: Annotated[str, Query(max_length=63, description="JSON Lines uploads only")] = "default",
    priority: Annotated[
        int, Query(ge=-100, le=100, description="JSON Lines uploads only")
    ] = CATALOG_PRIORITY,
) -> dict[str, Any]:
    """Create one child scan per event (priority -10 unless given); 201 with the catalog id."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    params: dict[str, Any] = {
        "name": name,
        "reco": reco,
        "workers": workers,
        "profile": profile,
        "priority": priority,
    }
    if nsides is not None:
        params["nsides"] = nsides
    cat = catalogs.parse_catalog(raw, content_type, params)
    return await catalogs.create_catalog(scans, cat, principal)


@router.get("/catalogs/{catalog_id}", response_model=CatalogStatus, responses=error_responses(404, 422))
async def catalog_status(
    catalog_id: str, db: DatabaseDep, principal: Principal = require("reader")
) -> CatalogStatus:
    """Progress over every child scan: counts per state, tasks sent and done, one row per scan."""
    return await catalogs.catalog_status(db, catalog_id)


@router.get(
    "/catalogs/{catalog_id}/download",
    responses={200: {"content": {"application/zip": {}}}, **error_responses(404, 422)},
)
async def download_catalog(
    catalog_id: str,
    db: DatabaseDep,
    principal: Principal = require("reader"),
    formats: Annotated[str, Query(description=f"comma-separated, of {', '.join(exports.FORMATS)}")] = "json",
) -> Response:
    """A zip: ``summary.csv`` (one row per event: ids, state, best fit, 50%/90% areas, truth offset),
    ``products/`` (each finished scan's result in every requested format) and ``catalog.json``."""
    wanted = catalogs.check_formats(formats)
    content = await catalogs.catalog_zip(db, catalog_id, wanted)
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{catalog_id}.zip"'},
    )
