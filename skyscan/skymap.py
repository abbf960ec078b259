"""Skymap assembly: from per-pixel best results to the result document the API and CLI return.

Pure functions over the refinement's completed pixels. The result document (schema
``skydriver.skymap/1``) is the same whether the scan ran locally or through the service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from skyscan.coordinates import angular_distance, detector_to_equatorial, equatorial_to_detector
from skyscan.event import Event
from skyscan.refinement import PixelBest, PixelKey, global_best

SKYMAP_SCHEMA = "skydriver.skymap/1"
FIT_COLUMNS = ("X", "Y", "Z", "T", "E_tot", "E_in")


def _num(value: Any) -> float | None:
    """JSON-safe float: NaN and infinities become null."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pixel_rows(complete: Mapping[PixelKey, PixelBest]) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(complete):
        pb = complete[key]
        row: dict[str, Any] = {"nside": pb.nside, "pixel": pb.pixel, "llh": _num(pb.llh)}
        for col in FIT_COLUMNS:
            row[col] = _num(pb.fit.get(col))
        row["variation"] = pb.variation
        row["status"] = "failed" if pb.failed else "ok"
        if pb.failed and pb.error:
            row["error"] = pb.error
        rows.append(row)
    return rows


def best_fit_summary(best: PixelBest, mjd: float) -> dict[str, Any]:
    ra, dec = best.radec
    zen, az = equatorial_to_detector(ra, dec, mjd)
    out: dict[str, Any] = {
        "nside": best.nside,
        "pixel": best.pixel,
        "ra_deg": math.degrees(ra),
        "dec_deg": math.degrees(dec),
        "zenith_deg": math.degrees(float(zen)),
        "azimuth_deg": math.degrees(float(az)),
        "llh": best.llh,
    }
    out.update({col: _num(best.fit.get(col)) for col in FIT_COLUMNS})
    return out


def truth_summary(event: Event, best: PixelBest, llh_at_truth: float | None) -> dict[str, Any] | None:
    """Offset of the best fit from the simulated truth and 2*(llh(truth) - llh(best))."""
    if event.truth is None:
        return None
    t_ra, t_dec = detector_to_equatorial(event.truth.zenith, event.truth.azimuth, event.mjd)
    b_ra, b_dec = best.radec
    offset = float(angular_distance(b_ra, b_dec, float(t_ra), float(t_dec)))
    delta = None if llh_at_truth is None or not math.isfinite(llh_at_truth) else 2 * (llh_at_truth - best.llh)
    return {
        "zenith_deg": math.degrees(event.truth.zenith),
        "azimuth_deg": math.degrees(event.truth.azimuth),
        "ra_deg": math.degrees(float(t_ra)),
        "dec_deg": math.degrees(float(t_dec)),
        "offset_deg": math.degrees(offset),
        "delta_2llh": delta,
    }


def event_summary(event: Event) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "event_id": event.event_id,
        "mjd": event.mjd,
        "event_type": event.event_type,
        "is_real_event": event.is_real_event,
    }


def build_result(
    *,
    scan_id: str,
    event: Event,
    reco: str,
    strategy: str,
    nsides: list[int],
    complete: Mapping[PixelKey, PixelBest],
    finished: bool,
    llh_at_truth: float | None = None,
) -> dict[str, Any]:
    """The result document: pixels, best fit, truth comparison; ``complete`` False while running."""
    best = global_best(complete)
    n_failed = sum(1 for pb in complete.values() if pb.failed)
    doc: dict[str, Any] = {
        "schema": SKYMAP_SCHEMA,
        "scan_id": scan_id,
        "complete": finished,
        "event": event_summary(event),
        "reco": reco,
        "strategy": strategy,
        "nsides": nsides,
        "n_pixels": len(complete),
        "n_failed_pixels": n_failed,
        "best_fit": best_fit_summary(best, event.mjd) if best else None,
        "pixels": pixel_rows(complete),
    }
    if best is not None and event.truth is not None:
        doc["truth"] = truth_summary(event, best, llh_at_truth)
    return doc


def pixels_from_result(doc: Mapping[str, Any]) -> dict[PixelKey, PixelBest]:
    """Inverse of :func:`pixel_rows`, for exports that start from a stored result document."""
    out: dict[PixelKey, PixelBest] = {}
    for row in doc["pixels"]:
        llh = row.get("llh")
        fit = {c: (np.nan if row.get(c) is None else float(row[c])) for c in FIT_COLUMNS}
        out[(row["nside"], row["pixel"])] = PixelBest(
            row["nside"], row["pixel"], math.nan if llh is None else float(llh), row.get("variation", 0), fit,
            row.get("status") == "failed", row.get("error"),
        )
    return out
