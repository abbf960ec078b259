"""Scan routes: submit (idempotent), status, result, event (for workers), abort, list, rescan,
add workers, and a Server-Sent Events stream of state changes and progress. HTTP only: the work is
in :mod:`skydriver_api.services`."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from skydriver_api.api_docs import AUTH, error_responses, product_content
from skydriver_api.auth import CurrentPrincipal, Principal, require
from skydriver_api.dependencies import CursorKeyDep, ScanServiceDep
from skydriver_api.models import (
    INT64,
    AddWorkersRequest,
    RescanRequest,
    ResultFormat,
    ScanCreated,
    ScanPage,
    ScanRequest,
    ScanStatus,
    WorkerRequestAccepted,
)
from skydriver_api.services import event_stream, idempotency, results, search
from skydriver_api.services.scans import scan_links, scan_status
from skyscan.records.scan import SCAN_STATES

router = APIRouter(prefix="/api/v1", tags=["scans"], responses=error_responses(*AUTH))

IDEMPOTENCY_KEY_MAX = 200


@router.post(
    "/scans",
    status_code=201,
    response_model=ScanCreated,
    responses={
        200: {"model": ScanCreated, "description": "replay of an Idempotency-Key"},
        **error_responses((409, "Idempotency-Key reused with another body"), 413, 422),
    },
)
async def submit_scan(
    req: ScanRequest,
    response: Response,
    scans: ScanServiceDep,
    principal: Principal = require("submitter"),
    idempotency_key: Annotated[str | None, Header(max_length=IDEMPOTENCY_KEY_MAX)] = None,
) -> ScanCreated:
    """Submit a scan. With an ``Idempotency-Key`` header, a repeat of the same request by the same
    owner returns the same scan (200); the same key with another body is refused (409)."""
    submitted = await idempotency.submit(scans, req, principal, idempotency_key)
    if submitted.replayed:
        response.status_code = 200
    return ScanCreated(scan_id=submitted.scan_id, state=submitted.state, links=scan_links(submitted.scan_id))


@router.get("/scans/{scan_id}", response_model=ScanStatus, responses=error_responses(404, 422))
async def get_scan(scan_id: str, scans: ScanServiceDep, principal: CurrentPrincipal) -> ScanStatus:
    return scan_status(await scans.load(scan_id, principal))


@router.get("/scans/{scan_id}/event", responses=error_responses(404, 422))
async def get_event(scan_id: str, scans: ScanServiceDep, principal: CurrentPrincipal) -> dict[str, Any]:
    scan = await scans.load(scan_id, principal)
    event = await scans.event_of(scan_id)
    return {"scan_id": scan_id, "reco": scan["reco"], "reco_options": scan["reco_options"], "event": event}


@router.get(
    "/scans/{scan_id}/result",
    responses={
        200: {
            "description": "The result in the format asked for (partial while the scan runs)",
            "content": product_content(),
        },
        **error_responses(404, (409, "This format cannot be produced yet (no finite fit)"), 422),
    },
)
async def get_result(
    scan_id: str,
    scans: ScanServiceDep,
    principal: CurrentPrincipal,
    format: Annotated[ResultFormat, Query(description="the product format")] = "json",
) -> Response:
    scan = await scans.load(scan_id, principal)
    event_doc = await scans.event_of(scan_id)
    doc = await results.result_document(scans.db, scan, event_doc)
    if format == "json":
        return JSONResponse(doc)
    doc = results.with_notice_context(doc, scan, scans.settings.gcn_healpix_base_url)
    rendered = await results.render(doc, event_doc, format)
    return Response(
        rendered.content,
        media_type=rendered.media_type,
        headers={"Content-Disposition": f'attachment; filename="{rendered.filename}"'},
    )


@router.delete(
    "/scans/{scan_id}", response_model=ScanStatus, status_code=202, responses=error_responses(404, 422)
)
async def abort_scan(scan_id: str, scans: ScanServiceDep, principal: CurrentPrincipal) -> ScanStatus:
    """Abort: the scan becomes ``aborted`` at once; the reconciler stops its processes and queues."""
    scan = await scans.load(scan_id, principal, manage=True)
    return scan_status(await scans.abort(scan, f"aborted by {principal.name}"))


@router.get("/scans", response_model=ScanPage, responses=error_responses(422))
async def list_scans(
    scans: ScanServiceDep,
    cursor_key: CursorKeyDep,
    principal: Principal = require("reader"),
    state: Annotated[str | None, Query(description=f"comma-separated, of {', '.join(SCAN_STATES)}")] = None,
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
    sort: Annotated[str, Query(description=f"one of {', '.join(search.SORTS)}")] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> ScanPage:
    """Newest first by default, filtered, paginated with a stable keyset cursor: scans added while
    a client pages through never shift the pages it has not read yet."""
    filters = search.ScanFilters(
        state=state,
        run_id=run_id,
        event_id=event_id,
        reco=reco,
        owner=owner,
        catalog_id=catalog_id,
        classifiers=tuple(classifier or ()),
        created_after=created_after,
        created_before=created_before,
    )
    docs, next_cursor = await search.search(scans.db, filters, sort, limit, cursor, cursor_key)
    return ScanPage(scans=[scan_status(d) for d in docs], next_cursor=next_cursor)


@router.post(
    "/scans/{scan_id}/rescan",
    status_code=201,
    response_model=ScanCreated,
    responses=error_responses(404, 413, 422),
)
async def rescan(
    scan_id: str,
    scans: ScanServiceDep,
    overrides: RescanRequest | None = None,
    principal: Principal = require("submitter"),
) -> ScanCreated:
    """Scan the same event again, with overrides (reco, nsides, workers, priority, ...). The new scan
    belongs to the caller and records ``rescan_of``; the original stays as it is unless
    ``abort_original`` is set (which needs the right to manage it)."""
    o = overrides or RescanRequest()
    original = await scans.load(scan_id, principal, manage=o.abort_original)
    doc = await scans.rescan(original, o, principal)
    return ScanCreated(scan_id=doc["_id"], state="queued", links=scan_links(doc["_id"]))


@router.post(
    "/scans/{scan_id}/workers",
    status_code=202,
    response_model=WorkerRequestAccepted,
    responses=error_responses(404, (409, "The scan ended: no workers can be added"), 413, 422),
)
async def add_workers(
    scan_id: str, body: AddWorkersRequest, scans: ScanServiceDep, principal: CurrentPrincipal
) -> WorkerRequestAccepted:
    """Ask for more workers: recorded on the scan, started by the reconciler through the launcher
    (at once for a running scan, after launch for a queued one)."""
    scan = await scans.load(scan_id, principal, manage=True)
    entry = await scans.request_workers(scan, body, principal.name)
    return WorkerRequestAccepted(
        scan_id=scan_id,
        request_id=entry["request_id"],
        workers=body.workers,
        cluster=body.cluster,
        state="pending",
    )


async def followed_scan(scan_id: str, scans: ScanServiceDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """The scan a stream follows, checked before the stream starts (so a refusal is a plain 4xx)."""
    return await scans.load(scan_id, principal)


@router.get(
    "/scans/{scan_id}/events",
    response_class=EventSourceResponse,
    responses=error_responses(404, 422),
)
async def scan_events(
    request: Request,
    scans: ScanServiceDep,
    scan: Annotated[dict[str, Any], Depends(followed_scan)],
    last_event_id: Annotated[int | None, Header(ge=-1)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: a ``state`` event for every entry of the scan's history, in order (``id``
    is the entry's index, so ``Last-Event-ID`` resumes), a ``progress`` event whenever the counts
    change, and a final ``end`` event once the scan reached a terminal state. Comments keep an idle
    stream alive."""
    first = 0 if last_event_id is None else last_event_id + 1
    stream = event_stream.scan_events(
        scans.db, scan["_id"], first, scans.settings.sse_poll_s, request.is_disconnected
    )
    async for event in stream:
        yield event
