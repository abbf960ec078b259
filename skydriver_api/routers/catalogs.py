"""Catalog reprocessing: many events, one configuration, one child scan per event at low priority.

``POST /api/v1/catalogs`` takes a JSON body (``CatalogRequest``: ``events`` plus the scan settings)
or JSON Lines (``Content-Type: application/x-ndjson``, one event per line, settings as query
parameters). Every event is validated before anything is stored: one bad line changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
import zipfile
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import ValidationError

from skydriver_api.auth import Principal, require
from skydriver_api.config import CATALOG_PRIORITY
from skydriver_api.models import CatalogRequest, CatalogStatus, ScanRequest
from skydriver_api.routers.scans import (
    ensure_storable,
    new_scan_document,
    ops_settings_of,
    store_of,
    validate_request,
)
from skydriver_api.store import SCAN_STATES, TERMINAL_STATES, utcnow
from skyscan.physics.event import EventFormatError, parse_event
from skyscan.skymap import exports

router = APIRouter(prefix="/api/v1", tags=["catalogs"])

JSONL_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/json-lines",
)
SUMMARY_COLUMNS = (
    "index",
    "scan_id",
    "run_id",
    "event_id",
    "state",
    "ra_deg",
    "dec_deg",
    "zenith_deg",
    "azimuth_deg",
    "llh",
    "nside",
    "area_50_deg2",
    "area_90_deg2",
    "truth_offset_deg",
)


def _links(catalog_id: str) -> dict[str, str]:
    base = f"/api/v1/catalogs/{catalog_id}"
    return {"self": base, "download": f"{base}/download", "scans": f"/api/v1/scans?catalog_id={catalog_id}"}


def _parse_jsonl(raw: bytes, params: dict[str, Any]) -> CatalogRequest:
    events = []
    for number, line in enumerate(raw.decode("utf-8", errors="strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event(json.loads(line)))
        except json.JSONDecodeError as err:
            raise HTTPException(422, detail=f"line {number}: not JSON: {err}") from None
        except EventFormatError as err:
            raise HTTPException(422, detail=f"line {number}: {err}") from None
    try:
        return CatalogRequest(events=events, **params)
    except ValidationError as err:
        raise HTTPException(
            422,
            detail="; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:10]),
        ) from None


@router.post(
    "/catalogs",
    status_code=201,
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
    principal: Principal = require("submitter"),
    name: Annotated[str, Query(max_length=200, description="JSON Lines uploads only")] = "",
    reco: Annotated[str, Query(max_length=64, description="JSON Lines uploads only")] = "pandel-mpe",
    nsides: Annotated[str | None, Query(max_length=200, description="JSON Lines uploads only")] = None,
    workers: Annotated[int, Query(ge=1, le=10000, description="JSON Lines uploads only")] = 2,
    priority: Annotated[
        int, Query(ge=-100, le=100, description="JSON Lines uploads only")
    ] = CATALOG_PRIORITY,
) -> dict[str, Any]:
    """Create one child scan per event (priority -10 unless given); 201 with the catalog id."""
    raw = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in JSONL_TYPES:
        params: dict[str, Any] = {"name": name, "reco": reco, "workers": workers, "priority": priority}
        if nsides is not None:
            params["nsides"] = nsides
        cat = _parse_jsonl(raw, params)
    else:
        try:
            cat = CatalogRequest.model_validate_json(raw)
        except ValidationError as err:
            raise HTTPException(
                422,
                detail="; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:10]
                ),
            ) from None
    limit = ops_settings_of(request).catalog_max_events
    if len(cat.events) > limit:
        raise HTTPException(
            413,
            detail=f"{len(cat.events)} events; a catalog holds at most {limit} "
            "(SKYDRIVER_CATALOG_MAX_EVENTS): split it",
        )
    catalog_id = "cat" + uuid.uuid4().hex[:20]
    settings = request.app.state.settings
    scans, events = [], []
    for index, event in enumerate(cat.events):
        req = ScanRequest(
            event=event,
            reco=cat.reco,
            reco_options=cat.reco_options,
            nsides=cat.nsides,
            strategy=cat.strategy,
            strategy_options=cat.strategy_options,
            workers=cat.workers,
            priority=cat.priority,
            classifiers=cat.classifiers,
        )
        try:
            n_variations, described = validate_request(req, settings.max_nside)
        except HTTPException as err:
            raise HTTPException(err.status_code, detail=f"events[{index}]: {err.detail}") from None
        doc = new_scan_document(
            req, principal.name, n_variations, described, catalog_id=catalog_id, catalog_index=index
        )
        scans.append(doc)
        events.append({"_id": doc["_id"], "event": event.to_json_dict()})
    ensure_storable(*scans, *events)
    store = store_of(request)
    now = utcnow()
    await store.catalogs.insert_one(
        {
            "_id": catalog_id,
            "name": cat.name,
            "owner": principal.name,
            "created_at": now,
            "n_events": len(scans),
            "scan_ids": [d["_id"] for d in scans],
            "config": cat.model_dump(mode="json", exclude={"events"}),
        }
    )
    await store.events.insert_many(events, ordered=False)  # events first: no scan without its event
    await store.scans.insert_many(scans, ordered=False)
    request.app.state.reconciler.wake()
    return {
        "catalog_id": catalog_id,
        "n_events": len(scans),
        "scan_ids": [d["_id"] for d in scans],
        "links": _links(catalog_id),
    }


async def _load(request: Request, catalog_id: str) -> dict[str, Any]:
    doc = await store_of(request).catalogs.find_one({"_id": catalog_id})
    if doc is None:
        raise HTTPException(404, detail=f"no catalog with id {catalog_id!r}")
    return doc


_CHILD_FIELDS = {
    "_id": 1,
    "state": 1,
    "state_reason": 1,
    "run_id": 1,
    "event_id": 1,
    "catalog_index": 1,
    "progress.tasks_sent": 1,
    "progress.tasks_done": 1,
    "best_fit": 1,
}


async def _children(request: Request, catalog_id: str) -> list[dict[str, Any]]:
    cursor = (
        store_of(request).scans.find({"catalog_id": catalog_id}, _CHILD_FIELDS).sort([("catalog_index", 1)])
    )
    return [d async for d in cursor]


@router.get("/catalogs/{catalog_id}", response_model=CatalogStatus)
async def catalog_status(
    catalog_id: str, request: Request, principal: Principal = require("reader")
) -> CatalogStatus:
    """Progress over every child scan: counts per state, tasks sent and done, one row per scan."""
    cat = await _load(request, catalog_id)
    children = await _children(request, catalog_id)
    states = {s: 0 for s in SCAN_STATES}
    sent = done = 0
    rows = []
    for c in children:
        states[c["state"]] = states.get(c["state"], 0) + 1
        prog = c.get("progress") or {}
        sent += int(prog.get("tasks_sent") or 0)
        done += int(prog.get("tasks_done") or 0)
        rows.append(
            {
                "index": c.get("catalog_index"),
                "scan_id": c["_id"],
                "state": c["state"],
                "run_id": c["run_id"],
                "event_id": c["event_id"],
                "tasks_done": prog.get("tasks_done", 0),
                "best_fit": c.get("best_fit"),
            }
        )
    return CatalogStatus(
        catalog_id=catalog_id,
        name=cat.get("name", ""),
        owner=cat["owner"],
        created_at=cat["created_at"],
        n_events=cat["n_events"],
        states=states,
        tasks_sent=sent,
        tasks_done=done,
        complete=all(c["state"] in TERMINAL_STATES for c in children),
        scans=rows,
        links=_links(catalog_id),
    )


def _summary_row(child: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    best = (result or {}).get("best_fit") or child.get("best_fit") or {}
    levels = ((result or {}).get("regions") or {}).get("levels") or {}
    truth = (result or {}).get("truth") or {}
    return {
        "index": child.get("catalog_index"),
        "scan_id": child["_id"],
        "run_id": child["run_id"],
        "event_id": child["event_id"],
        "state": child["state"],
        "ra_deg": best.get("ra_deg"),
        "dec_deg": best.get("dec_deg"),
        "zenith_deg": best.get("zenith_deg"),
        "azimuth_deg": best.get("azimuth_deg"),
        "llh": best.get("llh"),
        "nside": best.get("nside"),
        "area_50_deg2": (levels.get("50") or {}).get("area_deg2"),
        "area_90_deg2": (levels.get("90") or {}).get("area_deg2"),
        "truth_offset_deg": truth.get("offset_deg"),
    }


def _bundle(
    items: list[tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]],
    formats: list[str],
    catalog: dict[str, Any],
) -> bytes:
    buf = io.BytesIO()
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    problems: list[str] = []
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for child, result, event_doc in items:
            writer.writerow({k: ("" if v is None else v) for k, v in _summary_row(child, result).items()})
            if result is None:
                continue
            event = parse_event(event_doc) if event_doc is not None else None
            for fmt in formats:
                try:
                    rendered = exports.render(result, event, fmt)
                except Exception as err:  # e.g. no best fit for a GCN summary
                    problems.append(f"{child['_id']} {fmt}: {err}")
                    continue
                zf.writestr(f"products/{rendered.filename}", rendered.content)
        zf.writestr("summary.csv", table.getvalue())
        manifest = {
            "catalog_id": catalog["_id"],
            "name": catalog.get("name", ""),
            "n_events": catalog["n_events"],
            "formats": formats,
            "problems": problems,
        }
        zf.writestr("catalog.json", json.dumps(manifest, indent=2, default=str))
    return buf.getvalue()


@router.get("/catalogs/{catalog_id}/download", responses={200: {"content": {"application/zip": {}}}})
async def download_catalog(
    catalog_id: str,
    request: Request,
    principal: Principal = require("reader"),
    formats: Annotated[str, Query(description=f"comma-separated, of {', '.join(exports.FORMATS)}")] = "json",
) -> Response:
    """A zip: ``summary.csv`` (one row per event: ids, state, best fit, 50%/90% areas, truth offset),
    ``products/`` (each finished scan's result in every requested format) and ``catalog.json``."""
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in exports.FORMATS]
    if unknown or not wanted:
        raise HTTPException(422, detail=f"formats: unknown {unknown}; known: {', '.join(exports.FORMATS)}")
    cat = await _load(request, catalog_id)
    store = store_of(request)
    items = []
    for child in await _children(request, catalog_id):
        result = await store.skymap_for(child["_id"])
        event_doc = await store.get_event(child["_id"]) if result is not None else None
        items.append((child, result, event_doc))
    content = await asyncio.to_thread(_bundle, items, wanted, cat)
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{catalog_id}.zip"'},
    )
