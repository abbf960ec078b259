"""Scan routes: submit (idempotent), status, result, event (for workers), abort, list, rescan,
add workers, and a Server-Sent Events stream of state changes and progress."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import math
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pymongo.errors import DuplicateKeyError

from skydriver_api.auth import CurrentPrincipal, Principal, check_scan_access, require
from skydriver_api.config import OpsSettings, get_ops_settings
from skydriver_api.models import (
    INT64,
    AddWorkersRequest,
    RescanRequest,
    ScanCreated,
    ScanPage,
    ScanRequest,
    ScanStatus,
    WorkerRequestAccepted,
)
from skydriver_api.store import SCAN_STATES, TERMINAL_STATES, Store, utcnow
from skyscan.physics.event import parse_event
from skyscan.physics.recos.base import RecoUnsuitable
from skyscan.physics.recos.calibration import scan_level_set
from skyscan.physics.recos.registry import get_reco
from skyscan.refinement.fits import PixelBest, VariationResult, best_of
from skyscan.refinement.strategies import make_strategy
from skyscan.skymap import exports
from skyscan.skymap.assembly import build_result
from skyscan.skymap.contours import resolve_levels

router = APIRouter(prefix="/api/v1", tags=["scans"])


def store_of(request: Request) -> Store:
    return request.app.state.store


def validate_request(req: ScanRequest, max_nside: int) -> tuple[int, str]:
    """Check reco, options and progression up front: a bad request changes nothing."""
    for name in ("run_id", "event_id"):
        if getattr(req.event, name) > INT64:
            raise HTTPException(422, detail=f"event.{name}: at most {INT64} (a 64-bit integer)")
    try:
        reco = get_reco(req.reco, req.reco_options)
        reco.check_event(req.event)
    except (ValueError, OverflowError, RecoUnsuitable) as err:  # OverflowError: ints beyond 64 bits
        raise HTTPException(422, detail=f"reco: {err}") from None
    try:
        strategy = make_strategy(req.strategy, req.nsides, max_nside, **req.strategy_options)
    except (ValueError, TypeError) as err:
        raise HTTPException(422, detail=f"nsides/strategy: {err}") from None
    try:
        if req.level_set is not None:
            resolve_levels(req.level_set)
    except ValueError as err:
        raise HTTPException(422, detail=f"level_set: {err}") from None
    return reco.n_variations(), strategy.describe()


def new_scan_document(
    req: ScanRequest, owner: str, n_variations: int, nsides: str, **extra: Any
) -> dict[str, Any]:
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
        "level_set": req.level_set,
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


def ops_settings_of(request: Request) -> OpsSettings:
    return getattr(request.app.state, "ops_settings", None) or get_ops_settings()


def scan_status(doc: dict[str, Any]) -> ScanStatus:
    return ScanStatus(
        scan_id=doc["_id"],
        state=doc["state"],
        state_reason=doc.get("state_reason"),
        owner=doc["owner"],
        reco=doc["reco"],
        nsides=doc["nsides"],
        strategy=doc["strategy"],
        priority=doc["priority"],
        run_id=doc["run_id"],
        event_id=doc["event_id"],
        classifiers=doc.get("classifiers", {}),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        progress=doc.get("progress", {}),
        best_fit=doc.get("best_fit"),
        failed_pixels=doc.get("failed_pixels", 0),
        server_restarts=doc.get("server_restarts", 0),
        workforce=doc.get("workforce"),
        counters=doc.get("counters", {}),
        history=[{k: v for k, v in h.items() if v is not None} for h in doc.get("history", [])],
        rescan_of=doc.get("rescan_of"),
        catalog_id=doc.get("catalog_id"),
        alert=doc.get("alert"),
        workers=doc.get("workers"),
        worker_requests=doc.get("worker_requests", []) + doc.get("worker_requests_done", []),
        launch=_launch_summary(doc.get("launch")),
    )


def _launch_summary(launch: dict[str, Any] | None) -> dict[str, Any] | None:
    """Launch bookkeeping without the handles (process ids, Job names are operators' business)."""
    if not launch:
        return None
    return {
        k: launch.get(k) for k in ("attempts", "last_error", "next_attempt_at", "launched_at") if k in launch
    }


async def load_scan(
    store: Store, scan_id: str, principal: Principal, *, manage: bool = False
) -> dict[str, Any]:
    doc = await store.get_scan(scan_id)
    if doc is None:
        raise HTTPException(404, detail=f"no scan with id {scan_id!r}")
    check_scan_access(principal, doc, manage=manage)
    return doc


IDEMPOTENCY_KEY_MAX = 200


def _request_hash(req: Any) -> str:
    return hashlib.sha256(json.dumps(req.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


async def _replay(store: Store, key_doc: dict[str, Any], body_hash: str, response: Response) -> ScanCreated:
    if key_doc["body_hash"] != body_hash:
        raise HTTPException(
            409,
            detail="this Idempotency-Key was used with a different request body; use a new key for a new "
            "scan",
        )
    scan = await store.get_scan(key_doc["scan_id"])
    response.status_code = 200
    return ScanCreated(
        scan_id=key_doc["scan_id"],
        state=scan["state"] if scan else "queued",
        links=scan_links(key_doc["scan_id"]),
    )


def ensure_storable(*docs: dict[str, Any]) -> None:
    """Refuse (422) what MongoDB cannot store (integers beyond 64 bits, '$' keys) before writing anything."""
    import bson
    from bson.errors import InvalidDocument

    for doc in docs:
        try:
            bson.encode(doc)
        except (OverflowError, InvalidDocument) as err:
            raise HTTPException(
                422, detail=f"the request holds a value that cannot be stored: {err}"
            ) from None


async def create_scan(
    request: Request,
    req: ScanRequest,
    owner: str,
    extra: dict[str, Any] | None = None,
    scan_id: str | None = None,
) -> dict[str, Any]:
    """Validate and store a queued scan; the reconciler launches it. Returns the scan document."""
    settings = request.app.state.settings
    n_variations, nsides = validate_request(req, settings.max_nside)
    doc = new_scan_document(req, owner, n_variations, nsides, **(extra or {}))
    if scan_id is not None:
        doc["_id"] = scan_id
    event = req.event.to_json_dict()
    ensure_storable(doc, event)
    await store_of(request).insert_scan(doc, event)
    request.app.state.reconciler.wake()
    return doc


@router.post(
    "/scans",
    status_code=201,
    response_model=ScanCreated,
    responses={
        200: {"model": ScanCreated, "description": "replay of an Idempotency-Key"},
        409: {"description": "Idempotency-Key reused with another body"},
    },
)
async def submit_scan(
    req: ScanRequest,
    request: Request,
    response: Response,
    principal: Principal = require("submitter"),
    idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> ScanCreated:
    """Submit a scan. With an ``Idempotency-Key`` header, a repeat of the same request by the same
    owner returns the same scan (200); the same key with another body is refused (409)."""
    store = store_of(request)
    if not idempotency_key:
        doc = await create_scan(request, req, principal.name)
        return ScanCreated(scan_id=doc["_id"], state="queued", links=scan_links(doc["_id"]))
    key_id = hashlib.sha256(f"{principal.name}\n{idempotency_key}".encode()).hexdigest()
    body_hash = _request_hash(req)
    existing = await store.idempotency_keys.find_one({"_id": key_id})
    ttl = dt.timedelta(seconds=ops_settings_of(request).idempotency_key_ttl_s)
    if existing is not None and existing["created_at"] < utcnow() - ttl:
        # an expired key is free again (the TTL index, where the server has one, also removes it)
        await store.idempotency_keys.delete_one({"_id": key_id, "created_at": existing["created_at"]})
        existing = None
    if existing is not None:
        return await _replay(store, existing, body_hash, response)
    settings = request.app.state.settings
    validate_request(req, settings.max_nside)  # a bad request must not reserve the key
    scan_id = uuid.uuid4().hex
    try:
        await store.idempotency_keys.insert_one(
            {
                "_id": key_id,
                "owner": principal.name,
                "key": idempotency_key,
                "body_hash": body_hash,
                "scan_id": scan_id,
                "created_at": utcnow(),
            }
        )
    except DuplicateKeyError:  # a concurrent request with the same key won the race
        existing = await store.idempotency_keys.find_one({"_id": key_id})
        if existing is None:
            raise HTTPException(
                409, detail="a concurrent request with this Idempotency-Key failed; retry"
            ) from None
        return await _replay(store, existing, body_hash, response)
    try:
        doc = await create_scan(
            request, req, principal.name, {"idempotency_key": idempotency_key}, scan_id=scan_id
        )
    except BaseException:
        await store.idempotency_keys.delete_one({"_id": key_id, "scan_id": scan_id})
        raise
    return ScanCreated(scan_id=doc["_id"], state="queued", links=scan_links(doc["_id"]))


def scan_links(scan_id: str) -> dict[str, str]:
    base = f"/api/v1/scans/{scan_id}"
    return {"self": base, "result": f"{base}/result", "event": f"{base}/event", "events": f"{base}/events"}


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
        by_pixel[(r["nside"], r["pixel"])].append(
            VariationResult(
                r["nside"],
                r["pixel"],
                r["variation"],
                math.nan if llh is None else float(llh),
                r.get("fit", {}),
                r.get("status") == "failed",
                r.get("error"),
            )
        )
    n_var = scan.get("n_variations", 1)
    complete: dict[tuple[int, int], PixelBest] = {
        key: best_of(results)
        for key, results in by_pixel.items()
        if len({r.variation for r in results}) >= n_var
    }
    strategy = make_strategy(scan["strategy"], scan["nsides"], **scan.get("strategy_options", {}))
    return build_result(
        scan_id=scan["_id"],
        event=event,
        reco=scan["reco"],
        strategy=strategy.describe(),
        nsides=strategy.nsides,
        complete=complete,
        finished=False,
        level_set=scan_level_set(scan.get("level_set"), scan["reco"], scan.get("reco_options"), event),
    )


@router.get(
    "/scans/{scan_id}/result",
    responses={
        200: {
            "content": {
                "application/json": {},
                "application/octet-stream": {},
                "image/png": {},
                "application/fits": {},
                "application/geo+json": {},
            }
        }
    },
)
async def get_result(
    scan_id: str,
    request: Request,
    principal: CurrentPrincipal,
    format: Annotated[str, Query(description=f"one of {', '.join(exports.FORMATS)}")] = "json",
) -> Response:
    if format not in exports.FORMATS:
        raise HTTPException(
            422, detail=f"format: unknown format {format!r}; known: {', '.join(exports.FORMATS)}"
        )
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
    try:
        rendered = exports.render(doc, parse_event(event_doc), format)
    except ValueError as err:  # e.g. no finite fit yet: nothing to draw or summarise
        raise HTTPException(409, detail=f"cannot produce {format!r} for this scan yet: {err}") from None
    return Response(
        rendered.content,
        media_type=rendered.media_type,
        headers={"Content-Disposition": f'attachment; filename="{rendered.filename}"'},
    )


@router.delete("/scans/{scan_id}", response_model=ScanStatus, status_code=202)
async def abort_scan(scan_id: str, request: Request, principal: CurrentPrincipal) -> ScanStatus:
    """Abort: the scan becomes ``aborted`` at once; the reconciler stops its processes and queues."""
    store = store_of(request)
    scan = await load_scan(store, scan_id, principal, manage=True)
    if scan["state"] not in TERMINAL_STATES:
        updated = await store.transition(
            scan_id,
            ("queued", "launching", "running"),
            "aborted",
            reason=f"aborted by {principal.name}",
            extra={"cleanup_pending": True},
        )
        scan = updated or await store.get_scan(scan_id) or scan
        request.app.state.reconciler.wake()
    return scan_status(scan)


SORTS: dict[str, list[tuple[str, int]]] = {
    "-created_at": [("created_at", -1), ("_id", -1)],
    "created_at": [("created_at", 1), ("_id", 1)],
    "-priority": [("priority", -1), ("created_at", -1), ("_id", -1)],
    "priority": [("priority", 1), ("created_at", 1), ("_id", 1)],
}


def _encode_cursor(doc: dict[str, Any], sort: str) -> str:
    values = [doc[f].isoformat() if isinstance(doc[f], dt.datetime) else doc[f] for f, _ in SORTS[sort]]
    raw = json.dumps([sort, values]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str, sort: str) -> list[Any]:
    try:
        cursor_sort, values = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        fields = SORTS[sort]
        if cursor_sort != sort or len(values) != len(fields):
            raise ValueError("another sort")
        return [
            dt.datetime.fromisoformat(v) if f in ("created_at",) else v
            for (f, _), v in zip(fields, values, strict=True)
        ]
    except Exception:
        raise HTTPException(422, detail="cursor: not a cursor this API returned for this sort") from None


def _after(fields: list[tuple[str, int]], values: list[Any]) -> dict[str, Any]:
    """The documents strictly after ``values`` in the order ``fields`` (keyset pagination)."""
    clauses = []
    for i, (field, direction) in enumerate(fields):
        clause = {f: v for (f, _), v in zip(fields[:i], values[:i], strict=True)}
        clause[field] = {"$lt" if direction < 0 else "$gt": values[i]}
        clauses.append(clause)
    return {"$or": clauses}


def _classifier_filter(spec: str) -> dict[str, Any]:
    key, sep, raw = spec.partition(":")
    if not sep or not key or not key.replace("_", "").replace("-", "").isalnum():
        raise HTTPException(
            422, detail=f"classifier: expected key:value (e.g. classifier=campaign:ic23), got {spec!r}"
        )
    values: list[Any] = [raw]
    for convert in (int, float):
        with contextlib.suppress(ValueError):
            values.append(convert(raw))
    if raw.lower() in ("true", "false"):
        values.append(raw.lower() == "true")
    return {f"classifiers.{key}": {"$in": values}}


@router.get("/scans", response_model=ScanPage)
async def list_scans(
    request: Request,
    principal: Principal = require("reader"),
    state: Annotated[str | None, Query()] = None,
    run_id: Annotated[int | None, Query(ge=0, le=INT64)] = None,
    event_id: Annotated[int | None, Query(ge=0, le=INT64)] = None,
    reco: Annotated[str | None, Query(max_length=64)] = None,
    owner: Annotated[str | None, Query(max_length=200)] = None,
    catalog_id: Annotated[str | None, Query(max_length=64)] = None,
    classifier: Annotated[
        list[str] | None, Query(max_length=200, description="key:value, repeatable")
    ] = None,
    created_after: Annotated[dt.datetime | None, Query(description="ISO 8601, inclusive")] = None,
    created_before: Annotated[dt.datetime | None, Query(description="ISO 8601, exclusive")] = None,
    sort: Annotated[str, Query(description=f"one of {', '.join(SORTS)}")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ScanPage:
    """Newest first by default, filtered, paginated with a stable keyset cursor: scans added while
    a client pages through never shift the pages it has not read yet."""
    if sort not in SORTS:
        raise HTTPException(422, detail=f"sort: must be one of {', '.join(SORTS)}")
    conditions: list[dict[str, Any]] = []
    if state is not None:
        states = state.split(",")
        if any(s not in SCAN_STATES for s in states):
            raise HTTPException(
                422, detail=f"state: must be one of {', '.join(SCAN_STATES)} (comma-separated)"
            )
        conditions.append({"state": {"$in": states}})
    for key, value in (
        ("run_id", run_id),
        ("event_id", event_id),
        ("reco", reco),
        ("owner", owner),
        ("catalog_id", catalog_id),
    ):
        if value is not None:
            conditions.append({key: value})
    for spec in classifier or []:
        conditions.append(_classifier_filter(spec))
    for bound, op in ((created_after, "$gte"), (created_before, "$lt")):
        if bound is not None:
            if bound.tzinfo is None:
                bound = bound.replace(tzinfo=dt.UTC)
            bound = bound.replace(microsecond=bound.microsecond // 1000 * 1000)  # BSON dates are ms
            if op == "$gte":
                # '>= t' as '> t - 1 ms' (the same set at millisecond resolution): the MongoDB-wire server
                # we test on mishandles inclusive bounds on a compound index's inner field.
                op, bound = "$gt", bound - dt.timedelta(milliseconds=1)
            conditions.append({"created_at": {op: bound}})
    fields = SORTS[sort]
    if cursor:
        conditions.append(_after(fields, _decode_cursor(cursor, sort)))
    query: dict[str, Any] = {"$and": conditions} if conditions else {}
    found = store_of(request).scans.find(query, {"token_hashes": 0}).sort(fields).limit(limit + 1)
    docs = [d async for d in found]
    more = len(docs) > limit
    docs = docs[:limit]
    return ScanPage(
        scans=[scan_status(d) for d in docs], next_cursor=_encode_cursor(docs[-1], sort) if more else None
    )


# -- rescan ------------------------------------------------------------------------------------------
@router.post("/scans/{scan_id}/rescan", status_code=201, response_model=ScanCreated)
async def rescan(
    scan_id: str,
    request: Request,
    overrides: RescanRequest | None = None,
    principal: Principal = require("submitter"),
) -> ScanCreated:
    """Scan the same event again, with overrides (reco, nsides, workers, priority, ...). The new scan
    belongs to the caller and records ``rescan_of``; the original stays as it is unless
    ``abort_original`` is set (which needs the right to manage it)."""
    store = store_of(request)
    original = await load_scan(store, scan_id, principal, manage=bool(overrides and overrides.abort_original))
    event_doc = await store.get_event(scan_id)
    if event_doc is None:
        raise HTTPException(404, detail=f"scan {scan_id!r} has no stored event")
    o = overrides or RescanRequest()
    clusters = original.get("clusters") or [{"name": "default", "workers": original.get("workers", 2)}]
    if o.workers is not None:
        clusters = [{"name": "default", "workers": o.workers}]
    req = ScanRequest(
        event=parse_event(event_doc),
        reco=o.reco if o.reco is not None else original["reco"],
        reco_options=o.reco_options if o.reco_options is not None else original.get("reco_options", {}),
        nsides=o.nsides if o.nsides is not None else original["nsides"],
        strategy=o.strategy if o.strategy is not None else original["strategy"],
        strategy_options=(
            o.strategy_options if o.strategy_options is not None else original.get("strategy_options", {})
        ),
        workers=sum(c["workers"] for c in clusters),
        clusters=clusters if o.workers is None else [],
        resources=original.get("resources", {}),
        priority=o.priority if o.priority is not None else original["priority"],
        classifiers=o.classifiers if o.classifiers is not None else original.get("classifiers", {}),
    )
    root = original.get("rescan_root") or original["_id"]
    doc = await create_scan(request, req, principal.name, {"rescan_of": original["_id"], "rescan_root": root})
    await store.scans.update_one({"_id": original["_id"]}, {"$push": {"rescans": doc["_id"]}})
    if o.abort_original and original["state"] not in TERMINAL_STATES:
        await store.transition(
            original["_id"],
            ("queued", "launching", "running"),
            "aborted",
            reason=f"aborted by {principal.name} for rescan {doc['_id']}",
            extra={"cleanup_pending": True},
        )
        request.app.state.reconciler.wake()
    return ScanCreated(scan_id=doc["_id"], state="queued", links=scan_links(doc["_id"]))


# -- more workers ---------------------------------------------------------------------------------
@router.post("/scans/{scan_id}/workers", status_code=202, response_model=WorkerRequestAccepted)
async def add_workers(
    scan_id: str,
    body: AddWorkersRequest,
    request: Request,
    principal: CurrentPrincipal,
) -> WorkerRequestAccepted:
    """Ask for more workers: recorded on the scan, started by the reconciler through the launcher
    (at once for a running scan, after launch for a queued one)."""
    store = store_of(request)
    scan = await load_scan(store, scan_id, principal, manage=True)
    if scan["state"] in TERMINAL_STATES:
        raise HTTPException(409, detail=f"scan {scan_id} is {scan['state']}: no workers can be added")
    request_id = uuid.uuid4().hex[:12]
    entry = {
        "request_id": request_id,
        "workers": body.workers,
        "cluster": body.cluster,
        "by": principal.name,
        "requested_at": utcnow(),
        "state": "pending",
    }
    res = await store.scans.update_one(
        {"_id": scan_id, "state": {"$nin": list(TERMINAL_STATES)}},
        {"$push": {"worker_requests": entry}},
    )
    if res.matched_count == 0:
        raise HTTPException(409, detail=f"scan {scan_id} ended meanwhile: no workers can be added")
    request.app.state.reconciler.wake()
    return WorkerRequestAccepted(
        scan_id=scan_id, request_id=request_id, workers=body.workers, cluster=body.cluster, state="pending"
    )


# -- server-sent events ---------------------------------------------------------------------------
def _sse(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, default=_json_default)}\n\n"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


_SSE_FIELDS = {"state": 1, "state_reason": 1, "history": 1, "progress": 1, "best_fit": 1}


@router.get(
    "/scans/{scan_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def scan_events(
    scan_id: str,
    request: Request,
    principal: CurrentPrincipal,
    last_event_id: Annotated[int | None, Header(ge=-1)] = None,
) -> StreamingResponse:
    """Server-Sent Events: a ``state`` event for every entry of the scan's history, in order (``id``
    is the entry's index, so ``Last-Event-ID`` resumes), a ``progress`` event whenever the counts
    change, and a final ``end`` event once the scan reached a terminal state."""
    store = store_of(request)
    await load_scan(store, scan_id, principal)
    poll_s = ops_settings_of(request).sse_poll_s
    first = 0 if last_event_id is None else last_event_id + 1

    async def stream() -> AsyncIterator[str]:
        sent = first
        last_progress: tuple[Any, ...] | None = None
        quiet_since = asyncio.get_running_loop().time()
        yield "retry: 2000\n\n"
        while True:
            doc = await store.scans.find_one({"_id": scan_id}, _SSE_FIELDS)
            if doc is None:
                yield _sse("error", {"detail": f"scan {scan_id} was deleted"})
                return
            history = doc.get("history", [])
            emitted = False
            for index in range(sent, len(history)):
                entry = {k: v for k, v in history[index].items() if v is not None}
                yield _sse("state", {"scan_id": scan_id, "index": index, **entry}, event_id=index)
                emitted = True
            sent = max(sent, len(history))
            prog = doc.get("progress") or {}
            key = (prog.get("tasks_sent"), prog.get("tasks_done"), doc["state"])
            if key != last_progress:
                last_progress = key
                yield _sse(
                    "progress",
                    {
                        "scan_id": scan_id,
                        "state": doc["state"],
                        "tasks_sent": prog.get("tasks_sent", 0),
                        "tasks_done": prog.get("tasks_done", 0),
                        "rate_per_s": prog.get("rate_per_s"),
                        "eta_s": prog.get("eta_s"),
                        "best_fit": doc.get("best_fit"),
                    },
                )
                emitted = True
            if doc["state"] in TERMINAL_STATES:
                yield _sse(
                    "end", {"scan_id": scan_id, "state": doc["state"], "reason": doc.get("state_reason")}
                )
                return
            now = asyncio.get_running_loop().time()
            if emitted:
                quiet_since = now
            elif now - quiet_since > 15:
                quiet_since = now
                yield ": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(poll_s)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
