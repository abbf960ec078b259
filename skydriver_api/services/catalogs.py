"""Catalog reprocessing: many events, one configuration, one child scan per event at low priority.

A catalog arrives as JSON (``CatalogRequest``) or JSON Lines (one event per line, settings as
parameters). Every event is validated before anything is stored: one bad line changes nothing.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
import zipfile
from typing import Any

from pydantic import ValidationError

from skydriver_api.auth import Principal
from skydriver_api.models import CatalogRequest, CatalogStatus, ScanRequest
from skydriver_api.services.errors import Invalid, NotFound, TooLarge
from skydriver_api.services.scans import ScanService, ensure_storable, new_scan_document
from skyinfra.store import Database
from skyscan.physics.event import EventFormatError, parse_event
from skyscan.records.scan import SCAN_STATES, TERMINAL_STATES, utcnow
from skyscan.skymap import exports

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


def catalog_links(catalog_id: str) -> dict[str, str]:
    base = f"/api/v1/catalogs/{catalog_id}"
    return {"self": base, "download": f"{base}/download", "scans": f"/api/v1/scans?catalog_id={catalog_id}"}


def _errors(err: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()[:10])


def parse_catalog(raw: bytes, content_type: str, params: dict[str, Any]) -> CatalogRequest:
    """A JSON body, or JSON Lines with the settings in ``params``."""
    if content_type in JSONL_TYPES:
        return _parse_jsonl(raw, params)
    try:
        return CatalogRequest.model_validate_json(raw)
    except ValidationError as err:
        raise Invalid(_errors(err)) from None


def _parse_jsonl(raw: bytes, params: dict[str, Any]) -> CatalogRequest:
    events = []
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise Invalid(f"JSON Lines must be UTF-8: {err}") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(parse_event(json.loads(line)))
        except json.JSONDecodeError as err:
            raise Invalid(f"line {number}: not JSON: {err}") from None
        except RecursionError:
            raise Invalid(f"line {number}: JSON nested too deeply") from None
        except EventFormatError as err:
            raise Invalid(f"line {number}: {err}") from None
    try:
        return CatalogRequest(events=events, **params)
    except ValidationError as err:
        raise Invalid(_errors(err)) from None


async def create_catalog(service: ScanService, cat: CatalogRequest, principal: Principal) -> dict[str, Any]:
    """Check every event and the configuration, then store the catalog, its events and its child
    scans all together or not at all."""
    limit = service.settings.catalog_max_events
    if len(cat.events) > limit:
        raise TooLarge(
            f"{len(cat.events)} events; a catalog holds at most {limit} "
            "(SKYDRIVER_CATALOG_MAX_EVENTS): split it"
        )
    catalog_id = "cat" + uuid.uuid4().hex[:20]
    resources = service.policy.resources(cat.profile)
    scans, events = [], {}
    for index, event in enumerate(cat.events):
        req = ScanRequest(
            event=event,
            reco=cat.reco,
            reco_options=cat.reco_options,
            nsides=cat.nsides,
            strategy=cat.strategy,
            strategy_options=cat.strategy_options,
            workers=cat.workers,
            profile=cat.profile,
            priority=cat.priority,
            classifiers=cat.classifiers,
        )
        try:
            spec = service.checked(req, principal)
        except Invalid as err:
            raise Invalid(f"events[{index}]: {err.detail}") from None
        doc = new_scan_document(
            req, principal.name, spec, resources, catalog_id=catalog_id, catalog_index=index
        )
        scans.append(doc)
        events[doc["_id"]] = event.to_json_dict()
        ensure_storable(doc, what=f"events[{index}]: the scan")
        ensure_storable({"_id": doc["_id"], "event": events[doc["_id"]]}, what=f"events[{index}]: the event")
    catalog = {
        "_id": catalog_id,
        "name": cat.name,
        "owner": principal.name,
        "created_at": utcnow(),
        "n_events": len(scans),
        "scan_ids": [d["_id"] for d in scans],
        "config": cat.model_dump(mode="json", exclude={"events"}),
    }
    ensure_storable(catalog, what="the catalog")
    await service.db.create_catalog(catalog, events, scans)
    service.wake()
    return {
        "catalog_id": catalog_id,
        "n_events": len(scans),
        "scan_ids": [d["_id"] for d in scans],
        "links": catalog_links(catalog_id),
    }


async def load_catalog(db: Database, catalog_id: str) -> dict[str, Any]:
    doc = await db.catalogs.get(catalog_id)
    if doc is None:
        raise NotFound(f"no catalog with id {catalog_id!r}")
    return doc


async def catalog_status(db: Database, catalog_id: str) -> CatalogStatus:
    """Progress over every child scan: counts per state, tasks sent and done, one row per scan."""
    cat = await load_catalog(db, catalog_id)
    children = await db.scans.children_of(catalog_id, _CHILD_FIELDS)
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
        links=catalog_links(catalog_id),
    )


def check_formats(formats: str) -> list[str]:
    wanted = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = [f for f in wanted if f not in exports.FORMATS]
    if unknown or not wanted:
        raise Invalid(f"formats: unknown {unknown}; known: {', '.join(exports.FORMATS)}")
    return wanted


async def catalog_zip(db: Database, catalog_id: str, formats: list[str]) -> bytes:
    cat = await load_catalog(db, catalog_id)
    items = []
    for child in await db.scans.children_of(catalog_id, _CHILD_FIELDS):
        result = await db.skymaps.get(child["_id"])
        event_doc = await db.events.get(child["_id"]) if result is not None else None
        items.append((child, result, event_doc))
    return await asyncio.to_thread(_bundle, items, formats, cat)


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
