"""GCN notices in the unified schema of IceCube's single-neutrino alerts
(``gcn/notices/icecube/single_neutrino_alerts.schema.json``: neutrino ``Alert`` = core Event, Alert,
Reporter, Statistics, Localization and DateTime, plus ``nu_energy`` and ``pipeline``).

The schema's fields carry what IceCube's own notices carry whenever it is known. The alert
identity comes from ``doc["alert"]`` (the stored alert of an alert scan: run, event, revision,
stream and the sender's extra fields), which the service adds to the result before rendering:

* ``pipeline`` (Gold/Bronze Track Alert, Cascade Alert) from the alert's ``pipeline`` or stream
  name; the schema allows nothing else, so for other scans it is left out (ours is in
  ``additional_info``); ``alert_topology`` follows from it;
* ``record_number`` = revision + 1; ``alert_type`` ``initial`` for revision 0, ``update`` after,
  ``retraction`` when the alert says so (``alert_type`` or ``retraction: true``);
* ``alert_tense``: ``current`` for an alert, ``archival`` for other scans of real events (catalogs,
  re-scans), ``test`` for simulated ones;
* ``event_name`` from the alert (the service names alerts ``IceCube-YYMMDD`` plus a letter);
* ``nu_energy`` (TeV), ``p_astro`` (or the alert's ``signalness``), ``far`` passed through;
* ``healpix_url``: ``doc["healpix_base_url"]`` (a configured base) plus the probability map's name.

Localisation: ``ra``, ``dec`` (deg, ICRS) of the best fit and ``ra_dec_error`` (deg), the radius of
the smallest circle about it holding the whole 90% region, with ``containment_probability`` 0.9 and
``systematic_included`` (true for simulation-calibrated levels). Everything of ours (scan, reco,
asymmetric errors, areas, offsets to IceCube's own fits) is under ``additional_info``.
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

SCHEMA_URL = "https://gcn.nasa.gov/schema/main/gcn/notices/icecube/single_neutrino_alerts.schema.json"
PIPELINES = {"gold": "Gold Track Alert", "bronze": "Bronze Track Alert", "cascade": "Cascade Alert"}
TOPOLOGY = {"Gold Track Alert": "Track", "Bronze Track Alert": "Track", "Cascade Alert": "Shower"}
ALERT_TYPES = ("initial", "subsequent", "update", "retraction")
PASSED_THROUGH = {"nu_energy": ("nu_energy",), "p_astro": ("p_astro", "signalness"), "far": ("far",)}


def pipeline_of(alert: Mapping[str, Any]) -> str | None:
    given = alert.get("pipeline")
    if given in TOPOLOGY:
        return str(given)
    stream = str(alert.get("stream") or "").lower()
    return next((name for key, name in PIPELINES.items() if key in stream), None)


def alert_type_of(alert: Mapping[str, Any]) -> str:
    if alert.get("alert_type") in ALERT_TYPES:
        return str(alert["alert_type"])
    if alert.get("retraction") is True:
        return "retraction"
    return "initial" if int(alert.get("revision") or 0) == 0 else "update"


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _errors(plus: float, minus: float) -> dict[str, float]:
    return {"plus": round(plus, 4), "minus": round(minus, 4)}


def to_gcn(doc: Mapping[str, Any], event: Event | None) -> dict[str, Any]:
    an = analysis(doc)
    require_best(an, "a GCN notice")
    assert an.best is not None
    info = event_info(doc, event)
    alert: Mapping[str, Any] = doc.get("alert") or {}
    ra, dec = an.best.radec
    r50, r90 = an.region_for(0.5), an.region_for(0.9)
    pipeline = pipeline_of(alert) if alert else None

    out: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "mission": "IceCube",
        "instrument": "IC86",
        "messenger": "Neutrino",
    }
    if pipeline:
        out["pipeline"] = pipeline
        out["alert_topology"] = TOPOLOGY[pipeline]
    if isinstance(alert.get("event_name"), str) and alert["event_name"]:
        out["event_name"] = [alert["event_name"]]
    out["id"] = [f"{info.run_id}_{info.event_id}"]
    if alert:
        out["record_number"] = int(alert.get("revision") or 0) + 1
        out["alert_type"] = alert_type_of(alert)
    out["alert_datetime"] = Time.now().utc.isot + "Z"
    out["alert_tense"] = ("current" if alert else "archival") if info.is_real_event else "test"
    out["number_of_events"] = 1
    for field, names in PASSED_THROUGH.items():
        value = next((v for n in names if (v := _number(alert.get(n))) is not None), None)
        if value is not None:
            out[field] = value
    out["trigger_time"] = info.iso_time + "Z"
    out["ra"] = round(math.degrees(ra), 4)
    out["dec"] = round(math.degrees(dec), 4)
    if r90 is not None:
        mask = region_mask(an.map, an.best.llh, r90.level)
        out["ra_dec_error"] = round(max_offset_deg(an.map, mask, ra, dec), 4)
    out["containment_probability"] = 0.9
    out["systematic_included"] = an.level_set not in ("wilks", "custom")
    base = doc.get("healpix_base_url")
    if isinstance(base, str) and base:
        from skyscan.skymap.exports import filename

        out["healpix_url"] = f"{base.rstrip('/')}/{filename(doc, event, 'probability-fits')}"

    ours: dict[str, Any] = {
        "pipeline": f"SkyDriver {doc.get('reco')}",
        "scan_id": doc.get("scan_id"),
        "reco": doc.get("reco"),
        "complete": bool(doc.get("complete", False)),
        "run_id": info.run_id,
        "event_id": info.event_id,
        "event_type": info.event_type,
        "mjd": info.mjd,
        "level_set": an.level_set,
        "credible_areas_deg2": {k: round(v, 4) for k, v in an.credible_areas.items()},
    }
    if alert:
        ours["alert"] = {k: alert[k] for k in ("stream", "revision") if k in alert}
    for label, region in (("90", r90), ("50", r50)):
        if region is not None:
            ours[f"area_{label}_deg2"] = round(region.area_deg2, 4)
            ours[f"ra_error_{label}"] = _errors(region.ra_err_plus_deg, region.ra_err_minus_deg)
            ours[f"dec_error_{label}"] = _errors(region.dec_err_plus_deg, region.dec_err_minus_deg)
    refs = doc.get("reference_fits") or {}
    if refs:
        ours["reference_fits"] = {
            name: {k: round(v, 4) for k, v in ref.items() if k in ("ra_deg", "dec_deg", "offset_deg")}
            for name, ref in refs.items()
        }
    if an.unresolved is not None:  # the 90% region is not fully resolved at the finest nside
        ours["unresolved"] = an.unresolved["message"]
    out["additional_info"] = ours
    return out


def render_gcn(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return json.dumps(to_gcn(doc, event), indent=1).encode()
