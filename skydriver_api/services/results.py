"""Results: the stored skymap, or one assembled from the pixel results stored so far, in a format."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from skydriver_api.services.errors import Conflict
from skyinfra.store import Database
from skyscan.physics.event import parse_event
from skyscan.records.spec import ScanSpec
from skyscan.refinement.fits import PixelBest, PixelKey, VariationResult, best_of
from skyscan.skymap import exports
from skyscan.skymap.assembly import build_result


async def partial_result(db: Database, scan: dict[str, Any], event_doc: dict[str, Any]) -> dict[str, Any]:
    """Assemble the result from the pixel results stored so far (scan still running or ended early)."""
    event = parse_event(event_doc)
    by_pixel: dict[PixelKey, list[VariationResult]] = defaultdict(list)
    for record in await db.pixel_results.for_scan(scan["_id"]):
        result = record.to_variation_result()
        by_pixel[(result.nside, result.pixel)].append(result)
    n_var = scan.get("n_variations", 1)
    complete: dict[PixelKey, PixelBest] = {
        key: best_of(results)
        for key, results in by_pixel.items()
        if len({r.variation for r in results}) >= n_var
    }
    spec = ScanSpec.from_doc(scan)
    strategy = spec.build_strategy(event=event)
    return build_result(
        scan_id=scan["_id"],
        event=event,
        reco=spec.reco,
        strategy=strategy.describe(),
        nsides=strategy.nsides,
        complete=complete,
        finished=False,
        level_set=spec.level_set_for(event),
    )


async def result_document(db: Database, scan: dict[str, Any], event_doc: dict[str, Any]) -> dict[str, Any]:
    """The final skymap when there is one, else the partial one; with the scan's state."""
    doc = await db.skymaps.get(scan["_id"])
    if doc is None:
        doc = await partial_result(db, scan, event_doc)
    doc["scan_state"] = scan["state"]
    return doc


def with_notice_context(doc: dict[str, Any], scan: dict[str, Any], healpix_base_url: str) -> dict[str, Any]:
    """What a GCN notice says about the alert and where the probability map is published."""
    return {**doc, "alert": scan.get("alert"), "healpix_base_url": healpix_base_url}


async def render(doc: dict[str, Any], event_doc: dict[str, Any], fmt: str) -> exports.Rendered:
    try:
        return await asyncio.to_thread(exports.render, doc, parse_event(event_doc), fmt)
    except ValueError as err:  # e.g. no finite fit yet: nothing to draw or summarise
        raise Conflict(f"cannot produce {fmt!r} for this scan yet: {err}") from None
