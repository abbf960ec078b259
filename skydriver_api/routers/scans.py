"""Scan routes: submit, status, result, event (for workers), abort, list."""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse

from skydriver_api.auth import CurrentPrincipal, Principal, check_scan_access, require
from skydriver_api.models import ScanCreated, ScanPage, ScanRequest, ScanStatus
from skydriver_api.store import SCAN_STATES, TERMINAL_STATES, Store, utcnow
from skyscan import exports
from skyscan.event import parse_event
from skyscan.recos import RecoUnsuitable, get_reco
from skyscan.refinement import PixelBest, VariationResult, best_of, make_strategy
from skyscan.skymap import build_result

router = APIRouter(prefix="/api/v1", tags=["scans"])


def store_of(request: Request) -> Store:
    return request.app.state.store


def validate_request(req: ScanRequest, max_nside: int) -> tuple[int, str]:
    """Check reco, options and progression up front: a bad request changes nothing."""
    try:
        reco = get_reco(req.reco, req.reco_options)
        reco.check_event(req.event)
    except (ValueError, RecoUnsuitable) as err:
        raise HTTPException(422, detail=f"reco: {err}") from None
    try:
        strategy = make_strategy(req.strategy, req.nsides, max_nside, **req.strategy_options)
    except (ValueError, TypeError) as err:
        raise HTTPException(422, detail=f"nsides/strategy: {err}") from None
    return reco.n_variations(), strategy.describe()


def new_scan_document(req: ScanRequest, owner: str, n_variations: int, nsides: str, **extra: Any) -> dict[str, Any]:
    now = utcnow()
    scan_id = uuid.uuid4().hex
    clusters = [c.model_dump() for c in req.clusters] or [{"name": "default", "workers": req.workers}]
    return {
        "_id": scan_id,
        "state": "queued",
        "state_reason": None,
        "owner": owner,
        "priority": req.priority,
        "created_at": now,
        "updated_at": now,
        "history": [{"state": "queued", "at": now, "reason": None}],
        "run_id": req.event.run_id,
        "event_id": req.event.event_id,
        "reco": req.reco,
        "reco_options": req.reco_options,
        "n_variations": n_variations,
        "nsides": nsides,
        "strategy": req.strategy,
        "strategy_options": req.strategy_options,
        "clusters": clusters,
        "workers": sum(c["workers"] for c in clusters),
        "resources": req.resources.model_dump(),
        "classifiers": req.classifiers,
        "progress": {"nsides": {}, "tasks_sent": 0, "tasks_done": 0},
        "token_hashes": [],
        "launch": {"attempts": 0, "handles": {}, "last_error": None, "next_attempt_at": now},
        "server_restarts": 0,
        "counters": {},
        **extra,
    }


def scan_status(doc: dict[str, Any]) -> ScanStatus:
    return ScanStatus(
        scan_id=doc["_id"], state=doc["state"], state_reason=doc.get("state_reason"), owner=doc["owner"],
        reco=doc["reco"], nsides=doc["nsides"], strategy=doc["strategy"], priority=doc["priority"],
        run_id=doc["run_id"], event_id=doc["event_id"], classifiers=doc.get("classifiers", {}),
        created_at=doc["created_at"], updated_at=doc["updated_at"], progress=doc.get("progress", {}),
        best_fit=doc.get("best_fit"), failed_pixels=doc.get("failed_pixels", 0),
        server_restarts=doc.get("server_restarts", 0), workforce=doc.get("workforce"),
        counters=doc.get("counters", {}),
        history=[{k: v for k, v in h.items() if v is not None} for h in doc.get("history", [])],
    )


async def load_scan(store: Store, scan_id: str, principal: Principal, *, manage: bool = False) -> dict[str, Any]:
    doc = await store.get_scan(scan_id)
    if doc is None:
        raise HTTPException(404, detail=f"no scan with id {scan_id!r}")
    check_scan_access(principal, doc, manage=manage)
    return doc


@router.post("/scans", status_code=201, response_model=ScanCreated, dependencies=[])
async def submit_scan(req: ScanRequest, request: Request, principal: Principal = require("submitter")) -> ScanCreated:
    settings = request.app.state.settings
    n_variations, nsides = validate_request(req, settings.max_nside)
    doc = new_scan_document(req, principal.name, n_variations, nsides)
    await store_of(request).insert_scan(doc, req.event.to_json_dict())
    request.app.state.reconciler.wake()
    return ScanCreated(scan_id=doc["_id"], state="queued", links=scan_links(doc["_id"]))


def scan_links(scan_id: str) -> dict[str, str]:
    base = f"/api/v1/scans/{scan_id}"
    return {"self": base, "result": f"{base}/result", "event": f"{base}/event"}


@router.get("/scans/{scan_id}", response_model=ScanStatus)
async def get_scan(scan_id: str, request: Request, principal: CurrentPrincipal) -> ScanStatus:
    return scan_status(await load_scan(store_of(request), scan_id, principal))


@router.get("/scans/{scan_id}/event")
async def get_event(scan_id: str, request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    store = store_of(request)
    scan = await load_scan(store, scan_id, principal)
    event = await store.get_event(scan_id)
    if event is None:
        raise HTTPException(404, detail=f"scan {scan_id!r} has no stored event")
    return {"scan_id": scan_id, "reco": scan["reco"], "reco_options": scan["reco_options"], "event": event}


async def partial_result(store: Store, scan: dict[str, Any], event_doc: dict[str, Any]) -> dict[str, Any]:
    """Assemble the result from the pixel results stored so far (scan still running or ended early)."""
    event = parse_event(event_doc)
    by_pixel: dict[tuple[int, int], list[VariationResult]] = defaultdict(list)
    for r in await store.pixel_results_for(scan["_id"]):
        llh = r.get("llh")
        by_pixel[(r["nside"], r["pixel"])].append(VariationResult(
            r["nside"], r["pixel"], r["variation"], math.nan if llh is None else float(llh), r.get("fit", {}),
            r.get("status") == "failed", r.get("error"),
        ))
    n_var = scan.get("n_variations", 1)
    complete: dict[tuple[int, int], PixelBest] = {
        key: best_of(results) for key, results in by_pixel.items() if len({r.variation for r in results}) >= n_var
    }
    strategy = make_strategy(scan["strategy"], scan["nsides"], **scan.get("strategy_options", {}))
    return build_result(
        scan_id=scan["_id"], event=event, reco=scan["reco"], strategy=strategy.describe(),
        nsides=strategy.nsides, complete=complete, finished=False,
    )


@router.get(
    "/scans/{scan_id}/result",
    responses={200: {"content": {"application/json": {}, "application/octet-stream": {}, "image/png": {},
                                 "application/fits": {}, "application/geo+json": {}}}},
)
async def get_result(
    scan_id: str, request: Request, principal: CurrentPrincipal,
    format: Annotated[str, Query(description=f"one of {', '.join(exports.FORMATS)}")] = "json",
) -> Response:
    if format not in exports.FORMATS:
        raise HTTPException(422, detail=f"format: unknown format {format!r}; known: {', '.join(exports.FORMATS)}")
    store = store_of(request)
    scan = await load_scan(store, scan_id, principal)
    doc = await store.skymap_for(scan_id)
    event_doc = await store.get_event(scan_id)
    if event_doc is None:
        raise HTTPException(404, detail=f"scan {scan_id!r} has no stored event")
    if doc is None:
        doc = await partial_result(store, scan, event_doc)
    doc["scan_state"] = scan["state"]
    if format == "json":
        return JSONResponse(doc)
    rendered = exports.render(doc, parse_event(event_doc), format)
    return Response(
        rendered.content, media_type=rendered.media_type,
        headers={"Content-Disposition": f'attachment; filename="{rendered.filename}"'},
    )


@router.delete("/scans/{scan_id}", response_model=ScanStatus, status_code=202)
async def abort_scan(scan_id: str, request: Request, principal: CurrentPrincipal) -> ScanStatus:
    """Abort: the scan becomes ``aborted`` at once; the reconciler stops its processes and queues."""
    store = store_of(request)
    scan = await load_scan(store, scan_id, principal, manage=True)
    if scan["state"] not in TERMINAL_STATES:
        updated = await store.transition(
            scan_id, ("queued", "launching", "running"), "aborted", reason=f"aborted by {principal.name}",
            extra={"cleanup_pending": True},
        )
        scan = updated or await store.get_scan(scan_id) or scan
        request.app.state.reconciler.wake()
    return scan_status(scan)


def _encode_cursor(doc: dict[str, Any]) -> str:
    raw = json.dumps([doc["created_at"].isoformat(), doc["_id"]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[Any, str]:
    import datetime as dt

    try:
        created, scan_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return dt.datetime.fromisoformat(created), str(scan_id)
    except Exception:
        raise HTTPException(422, detail="cursor: not a cursor this API returned") from None


@router.get("/scans", response_model=ScanPage)
async def list_scans(
    request: Request,
    principal: Principal = require("reader"),
    state: Annotated[str | None, Query()] = None,
    run_id: Annotated[int | None, Query(ge=0)] = None,
    event_id: Annotated[int | None, Query(ge=0)] = None,
    reco: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ScanPage:
    """Newest first, paginated with a stable cursor (created_at, id)."""
    query: dict[str, Any] = {}
    if state is not None:
        if state not in SCAN_STATES:
            raise HTTPException(422, detail=f"state: must be one of {', '.join(SCAN_STATES)}")
        query["state"] = state
    for key, value in (("run_id", run_id), ("event_id", event_id), ("reco", reco), ("owner", owner)):
        if value is not None:
            query[key] = value
    if cursor:
        created, last_id = _decode_cursor(cursor)
        query["$or"] = [{"created_at": {"$lt": created}}, {"created_at": created, "_id": {"$lt": last_id}}]
    docs = [d async for d in store_of(request).scans.find(query).sort([("created_at", -1), ("_id", -1)]).limit(limit + 1)]
    more = len(docs) > limit
    docs = docs[:limit]
    return ScanPage(scans=[scan_status(d) for d in docs], next_cursor=_encode_cursor(docs[-1]) if more else None)
