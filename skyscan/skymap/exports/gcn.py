"""A GCN-style JSON summary, shaped after the unified schema's neutrino alerts.

Core localisation fields: ``ra``, ``dec`` (deg, ICRS), ``ra_dec_error`` (deg: the radius of the
smallest circle about the best fit that holds the whole 90% region), ``containment_probability``
and ``systematic_included`` (true for simulation-calibrated levels). IceCube-style extras: the
asymmetric RA/Dec errors of the 90% region (``ra_error``/``dec_error`` with ``plus``/``minus``),
the 50% and 90% areas and the run and event ids. Not a validated GCN notice: extra fields are ours.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from astropy.time import Time

from skyscan.physics.event import Event
from skyscan.skymap.contours import max_offset_deg, region_mask
from skyscan.skymap.exports.common import analysis, event_info, require_best


def to_gcn(doc: Mapping[str, Any], event: Event | None) -> dict[str, Any]:
    an = analysis(doc)
    require_best(an, "a GCN summary")
    assert an.best is not None
    info = event_info(doc, event)
    ra, dec = an.best.radec
    r50, r90 = an.region_for(0.5), an.region_for(0.9)
    out: dict[str, Any] = {
        "mission": "IceCube",
        "instrument": "IceCube",
        "messenger": "Neutrino",
        "alert_tense": "current" if info.is_real_event else "test",
        "alert_datetime": Time.now().utc.isot + "Z",
        "trigger_time": info.iso_time + "Z",
        "id": [f"{info.run_id}_{info.event_id}"],
        "run_id": info.run_id,
        "event_id": info.event_id,
        "event_type": info.event_type,
        "mjd": info.mjd,
        "scan_id": doc.get("scan_id"),
        "reco": doc.get("reco"),
        "complete": bool(doc.get("complete", False)),
        "ra": round(math.degrees(ra), 4),
        "dec": round(math.degrees(dec), 4),
        "containment_probability": 0.9,
        "systematic_included": an.level_set not in ("wilks", "custom"),
        "level_set": an.level_set,
    }
    if r90 is not None:
        mask = region_mask(an.map, an.best.llh, r90.level)
        out["ra_dec_error"] = round(max_offset_deg(an.map, mask, ra, dec), 4)
        out["ra_error"] = {"plus": round(r90.ra_err_plus_deg, 4), "minus": round(r90.ra_err_minus_deg, 4)}
        out["dec_error"] = {"plus": round(r90.dec_err_plus_deg, 4), "minus": round(r90.dec_err_minus_deg, 4)}
        out["area_90_deg2"] = round(r90.area_deg2, 4)
    if r50 is not None:
        out["area_50_deg2"] = round(r50.area_deg2, 4)
        out["ra_error_50"] = {"plus": round(r50.ra_err_plus_deg, 4), "minus": round(r50.ra_err_minus_deg, 4)}
        out["dec_error_50"] = {
            "plus": round(r50.dec_err_plus_deg, 4),
            "minus": round(r50.dec_err_minus_deg, 4),
        }
    out["credible_areas_deg2"] = {k: round(v, 4) for k, v in an.credible_areas.items()}
    if an.unresolved is not None:  # the 90% region is not fully resolved; additional_info is one string
        notes = (out.get("additional_info"), an.unresolved["message"])
        out["additional_info"] = "; ".join(s for s in notes if s)
    return out


def render_gcn(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return json.dumps(to_gcn(doc, event), indent=1).encode()
