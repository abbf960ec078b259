"""Realtime alerts: one scan per alert revision, launched at realtime priority.

Two accepted bodies:

* the open format with alert metadata: ``{"event": <skydriver.event/1>, "alert": {run_id, event_id,
  revision, stream, ...}}``;
* an IceCube i3live realtime document (``{"value": {"data": ...}, ...}``), optionally wrapped as
  ``{"i3live": <document>, "alert": {revision, stream, ...}}``; it is converted with
  :func:`skyscan.readers.realtime.read_realtime_event` and the geometry of ``SKYDRIVER_GEOMETRY_FILE``.

Duplicates (same run, event and revision; unique index on ``alerts``) return the existing scan.
Each alert gets IceCube's kind of name, ``IceCube-YYMMDD`` plus a letter by order within the UTC
day of the event (A first), unless it brings its own ``event_name``; later revisions keep it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request, Response
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from skydriver_api.auth import Principal, require
from skydriver_api.config import REALTIME_PRIORITY, OpsSettings
from skydriver_api.models import AlertAccepted, AlertMeta, AlertRequest, ScanRequest
from skydriver_api.routers.scans import create_scan, ops_settings_of, scan_links, store_of, validate_request
from skydriver_api.store import utcnow
from skyscan.physics.event import Event

router = APIRouter(prefix="/api/v1", tags=["alerts"])


def _validation_detail(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:10])


@lru_cache(maxsize=4)
def _geometry(path: str) -> Any:
    from skyscan.physics.geometry import load_geometry_csv

    return load_geometry_csv(path)


def _geometry_path(ops: OpsSettings) -> Path | None:
    if ops.geometry_file is not None:
        return ops.geometry_file
    from skyscan.physics.geometry import find_default_geometry

    return find_default_geometry()


def _convert_i3live(document: dict[str, Any], ops: OpsSettings) -> Event:
    from skyscan.readers.realtime import RealtimeFormatError, read_realtime_event

    path = _geometry_path(ops)
    if path is None or not Path(path).is_file():
        raise HTTPException(
            422,
            detail="i3live alerts need a detector geometry: set SKYDRIVER_GEOMETRY_FILE "
            "(or send the open format: {event, alert})",
        )
    try:
        return read_realtime_event(document, _geometry(str(path)))
    except RealtimeFormatError as err:
        raise HTTPException(422, detail=f"i3live event: {err}") from None
    except Exception as err:  # untrusted input, malformed beyond what the reader names: still a 4xx
        raise HTTPException(422, detail=f"i3live event: unreadable ({type(err).__name__}: {err})") from None


def _i3live_stream(document: dict[str, Any]) -> str:
    value = document.get("value")
    streams = value.get("streams") if isinstance(value, dict) else None
    if isinstance(streams, list) and streams and isinstance(streams[0], str):
        return streams[0]
    return str(document.get("varname", ""))[:100]


async def parse_alert(body: dict[str, Any], ops: OpsSettings) -> tuple[Event, AlertMeta, str]:
    """(event, alert metadata, source format) from either accepted body."""
    if "event" in body:
        try:
            req = AlertRequest.model_validate(body)
        except ValidationError as err:
            raise HTTPException(422, detail=_validation_detail(err)) from None
        if (req.alert.run_id, req.alert.event_id) != (req.event.run_id, req.event.event_id):
            raise HTTPException(
                422,
                detail=f"alert: run_id/event_id ({req.alert.run_id}, {req.alert.event_id}) "
                f"differ from the event's ({req.event.run_id}, {req.event.event_id})",
            )
        return req.event, req.alert, "open"
    document = body.get("i3live", body)
    if not isinstance(document, dict) or "value" not in document:
        raise HTTPException(
            422,
            detail="expected {event, alert} (open format) or an i3live realtime document "
            "(with 'value'), optionally as {i3live, alert}",
        )
    event = await asyncio.to_thread(_convert_i3live, document, ops)
    extra = body.get("alert", {}) if "i3live" in body else {}
    if not isinstance(extra, dict):
        raise HTTPException(422, detail="alert: must be an object")
    meta_doc = {
        "stream": _i3live_stream(document),
        **extra,
        "run_id": event.run_id,
        "event_id": event.event_id,
    }
    try:
        meta = AlertMeta.model_validate(meta_doc)
    except ValidationError as err:
        raise HTTPException(422, detail=f"alert: {_validation_detail(err)}") from None
    return event, meta, "i3live"


MJD_ZERO = dt.datetime(1858, 11, 17, tzinfo=dt.UTC)


def event_day(mjd: float) -> str:
    return (MJD_ZERO + dt.timedelta(days=mjd)).strftime("%y%m%d")


def day_letter(index: int) -> str:
    """A, B, ..., Z, AA, AB, ... for the 0th, 1st, ... alert of a day."""
    out, n = "", index + 1
    while n:
        n, r = divmod(n - 1, 26)
        out = chr(ord("A") + r) + out
    return out


async def _event_name(request: Request, event: Event, meta: AlertMeta) -> str:
    """The alert's own name, else an earlier revision's, else the next letter of the event's day
    among the stored alerts (two alerts of one day arriving at once could draw the same letter)."""
    given = (meta.model_extra or {}).get("event_name")
    if isinstance(given, str) and given:
        return given
    alerts = store_of(request).alerts
    earlier = await alerts.find_one({"run_id": meta.run_id, "event_id": meta.event_id})
    if earlier is not None and earlier.get("event_name"):
        return str(earlier["event_name"])
    day = event_day(event.mjd)
    taken = {doc.get("event_name") async for doc in alerts.find({"event_day": day})}
    return f"IceCube-{day}{day_letter(len(taken - {None}))}"


async def _existing(request: Request, meta: AlertMeta, response: Response) -> AlertAccepted | None:
    found = await store_of(request).alerts.find_one(
        {"run_id": meta.run_id, "event_id": meta.event_id, "revision": meta.revision}
    )
    if found is None:
        return None
    response.status_code = 200
    return AlertAccepted(
        scan_id=found["scan_id"], duplicate=True, alert=_public(found), links=scan_links(found["scan_id"])
    )


def _public(alert_doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alert_doc.items() if k != "_id"}


@router.post(
    "/alerts",
    status_code=201,
    response_model=AlertAccepted,
    responses={200: {"model": AlertAccepted, "description": "a duplicate: the existing scan"}},
)
async def submit_alert(
    request: Request,
    response: Response,
    body: dict[str, Any] = Body(...),
    principal: Principal = require("submitter"),
) -> AlertAccepted:
    """Scan a realtime alert at priority 100 with the configured reco, nsides and workers. The same
    (run_id, event_id, revision) again returns the scan of the first (200, ``duplicate: true``)."""
    ops = ops_settings_of(request)
    event, meta, source = await parse_alert(body, ops)
    if (dup := await _existing(request, meta, response)) is not None:
        return dup
    req = ScanRequest(
        event=event,
        reco=ops.alert_reco,
        nsides=ops.alert_nsides,
        workers=ops.alert_workers,
        priority=REALTIME_PRIORITY,
        classifiers={"alert_stream": meta.stream or "unknown", "alert_revision": meta.revision},
    )
    validate_request(req, request.app.state.settings.max_nside)
    scan_id = uuid.uuid4().hex
    now = utcnow()
    alert_doc = {
        **meta.model_dump(),
        "event_name": await _event_name(request, event, meta),
        "event_day": event_day(event.mjd),
        "scan_id": scan_id,
        "received_at": now,
        "owner": principal.name,
        "source": source,
    }
    store = store_of(request)
    try:
        await store.alerts.insert_one(alert_doc)
    except DuplicateKeyError:  # the same alert arrived concurrently
        dup = await _existing(request, meta, response)
        if dup is None:
            raise HTTPException(409, detail="a concurrent copy of this alert failed; retry") from None
        return dup
    extra = {
        "alert": _public(alert_doc),
        "webhook_pending": bool(ops.alert_webhook_url),
        "webhook": {"attempts": 0, "next_attempt_at": now},
    }
    try:
        await create_scan(request, req, principal.name, extra, scan_id=scan_id)
    except BaseException:
        await store.alerts.delete_one({"scan_id": scan_id})
        raise
    return AlertAccepted(
        scan_id=scan_id, duplicate=False, alert=_public(alert_doc), links=scan_links(scan_id)
    )
