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
import contextlib
import datetime as dt
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from skydriver_api.auth import Principal
from skydriver_api.models import AlertMeta, AlertRequest, ScanRequest
from skydriver_api.services.errors import Conflict, Invalid
from skydriver_api.services.scans import ScanService
from skydriver_api.settings import REALTIME_PRIORITY, ApiSettings
from skyinfra.store import Duplicate
from skyscan.physics.event import Event
from skyscan.records.scan import new_scan_id, utcnow


def _validation_detail(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:10])


@lru_cache(maxsize=4)
def _geometry(path: str) -> Any:
    from skyscan.physics.geometry import load_geometry_csv

    return load_geometry_csv(path)


def _geometry_path(settings: ApiSettings) -> Path | None:
    if settings.geometry_file is not None:
        return settings.geometry_file
    from skyscan.physics.geometry import find_default_geometry

    return find_default_geometry()


def _convert_i3live(document: dict[str, Any], settings: ApiSettings) -> Event:
    from skyscan.readers.realtime import RealtimeFormatError, decode_frames, read_realtime_event

    path = _geometry_path(settings)
    try:
        if path is None or not Path(path).is_file():
            decode_frames(document)  # a corrupt document says so first, whatever the configuration
            raise Invalid(
                "i3live alerts need a detector geometry: set SKYDRIVER_GEOMETRY_FILE "
                "(or send the open format: {event, alert})",
            )
        return read_realtime_event(document, _geometry(str(path)))
    except Invalid:
        raise
    except RealtimeFormatError as err:
        raise Invalid(f"i3live event: {err}") from None
    except Exception as err:  # untrusted input, malformed beyond what the reader names: still a 4xx
        raise Invalid(f"i3live event: unreadable ({type(err).__name__}: {err})") from None


def _i3live_stream(document: dict[str, Any]) -> str:
    value = document.get("value")
    streams = value.get("streams") if isinstance(value, dict) else None
    if isinstance(streams, list) and streams and isinstance(streams[0], str):
        return streams[0]
    return str(document.get("varname", ""))[:100]


async def parse_alert(body: dict[str, Any], settings: ApiSettings) -> tuple[Event, AlertMeta, str]:
    """(event, alert metadata, source format) from either accepted body."""
    if "event" in body:
        try:
            req = AlertRequest.model_validate(body)
        except ValidationError as err:
            raise Invalid(_validation_detail(err)) from None
        if (req.alert.run_id, req.alert.event_id) != (req.event.run_id, req.event.event_id):
            raise Invalid(
                f"alert: run_id/event_id ({req.alert.run_id}, {req.alert.event_id}) "
                f"differ from the event's ({req.event.run_id}, {req.event.event_id})",
            )
        return req.event, req.alert, "open"
    document = body.get("i3live", body)
    if not isinstance(document, dict) or "value" not in document:
        raise Invalid(
            "expected {event, alert} (open format) or an i3live realtime document "
            "(with 'value'), optionally as {i3live, alert}",
        )
    event = await asyncio.to_thread(_convert_i3live, document, settings)
    extra = body.get("alert", {}) if "i3live" in body else {}
    if not isinstance(extra, dict):
        raise Invalid("alert: must be an object")
    meta_doc = {
        "stream": _i3live_stream(document),
        **extra,
        "run_id": event.run_id,
        "event_id": event.event_id,
    }
    try:
        meta = AlertMeta.model_validate(meta_doc)
    except ValidationError as err:
        raise Invalid(f"alert: {_validation_detail(err)}") from None
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


async def event_name(service: ScanService, event: Event, meta: AlertMeta) -> str:
    """The alert's own name, else an earlier revision's, else the next letter of the event's day
    among the stored alerts (two alerts of one day arriving at once could draw the same letter)."""
    given = (meta.model_extra or {}).get("event_name")
    if isinstance(given, str) and given:
        return given
    alerts = service.db.alerts
    earlier = await alerts.any_revision(meta.run_id, meta.event_id)
    if earlier is not None and earlier.get("event_name"):
        return str(earlier["event_name"])
    day = event_day(event.mjd)
    taken = await alerts.names_on_day(day)
    return f"IceCube-{day}{day_letter(len(taken))}"


@dataclass(frozen=True)
class AlertOutcome:
    scan_id: str
    duplicate: bool
    alert: dict[str, Any]


def alert_key(alert: dict[str, Any]) -> str:
    """The identity of one alert revision as a message key: ``run_id:event_id:revision``."""
    return f"{alert['run_id']}:{alert['event_id']}:{alert.get('revision', 0)}"


def public(alert_doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in alert_doc.items() if k != "_id"}


async def submit(
    service: ScanService, body: dict[str, Any], principal: Principal, origin: dict[str, Any] | None = None
) -> AlertOutcome:
    """Scan a realtime alert at priority 100 with the configured reco, nsides and workers; the same
    (run_id, event_id, revision) again returns the scan of the first. ``origin``: where the alert
    came from when not over REST (a Kafka topic, partition and offset), kept with the alert."""
    settings = service.settings
    event, meta, source = await parse_alert(body, settings)
    req = ScanRequest(
        event=event,
        reco=settings.alert_reco,
        nsides=settings.alert_nsides,
        strategy=settings.alert_strategy,
        workers=settings.alert_workers,
        priority=REALTIME_PRIORITY,
        classifiers={"alert_stream": meta.stream or "unknown", "alert_revision": meta.revision},
    )
    if (found := await service.db.alerts.find(meta.run_id, meta.event_id, meta.revision)) is not None:
        return await _duplicate(service, req, found, principal)
    service.checked(req, principal, realtime=True)
    alert_doc = {
        **meta.model_dump(),
        "event_name": await event_name(service, event, meta),
        "event_day": event_day(event.mjd),
        "scan_id": new_scan_id(),
        "received_at": utcnow(),
        "owner": principal.name,
        "source": source,
        **({"origin": origin} if origin else {}),
    }
    try:
        await service.db.alerts.insert(alert_doc)
    except Duplicate:  # the same alert arrived concurrently
        found = await service.db.alerts.find(meta.run_id, meta.event_id, meta.revision)
        if found is None:
            raise Conflict("a concurrent copy of this alert failed; retry") from None
        return await _duplicate(service, req, found, principal)
    try:
        await _create_scan(service, req, alert_doc, principal)
    except BaseException:
        await service.db.alerts.delete_for_scan(alert_doc["scan_id"])
        raise
    return AlertOutcome(alert_doc["scan_id"], duplicate=False, alert=public(alert_doc))


async def _create_scan(
    service: ScanService, req: ScanRequest, alert_doc: dict[str, Any], principal: Principal
) -> None:
    settings = service.settings
    now = utcnow()
    extra = {
        "alert": public(alert_doc),
        "webhook_pending": bool(settings.alert_webhook_url),
        "webhook": {"attempts": 0, "next_attempt_at": now},
        "notice_pending": bool(settings.kafka_notice_topic),
        "notice": {"attempts": 0, "next_attempt_at": now},
    }
    with contextlib.suppress(Duplicate):  # the scan id is the alert's: a concurrent copy wrote it
        await service.create(req, principal, extra, scan_id=alert_doc["scan_id"], realtime=True)


async def _duplicate(
    service: ScanService, req: ScanRequest, found: dict[str, Any], principal: Principal
) -> AlertOutcome:
    """The scan of an alert stored before. A process that died between storing the alert and its
    scan (a listener killed, an API restarted) left the alert alone: its scan is written now, under
    the alert's scan id, so the copy that comes again completes it instead of finding nothing."""
    if await service.db.scans.get(found["scan_id"], {"_id": 1}) is None:
        service.checked(req, principal, realtime=True)
        await _create_scan(service, req, found, principal)
    return AlertOutcome(found["scan_id"], duplicate=True, alert=public(found))
