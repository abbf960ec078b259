"""Skymap assembly: from per-pixel best results to the result document the API and CLI return.

Pure functions over the refinement's completed pixels. The result document (schema
``skydriver.skymap/1``) is the same whether the scan ran locally or through the service.

Besides the pixels and the best fit, the document carries the error regions: for each level of a
level set (Wilks by default) the area in square degrees of ``2*dLLH <= level`` on the multi-order
map and the asymmetric RA/Dec errors, and the 50%/90% credible areas of the probability map
``exp(-dLLH)`` normalised over the sky. :func:`analyse` gives the same numbers (and the map) to the
exports. For events carrying reference fits (IceCube's own reconstructions of a real alert),
``reference_fits`` gives each one's direction and its angle from our best fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from skyscan.physics.event import Event
from skyscan.refinement.fits import PixelBest, PixelKey, global_best
from skyscan.sky.coordinates import angular_distance, detector_to_equatorial, equatorial_to_detector
from skyscan.skymap import contours
from skyscan.skymap.multiorder import MultiOrderMap, build_multiorder, probdensity

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


def reference_fits_summary(event: Event, analysis: Analysis | None) -> dict[str, dict[str, Any]]:
    """Each of the event's reference fits (IceCube's own reconstructions): its direction and, when
    there is a map, the angle from our best fit to it and 2*dLLH of our map where it points (null
    where nothing was fitted)."""
    if not event.reference_fits:
        return {}
    names = sorted(event.reference_fits)
    zen = np.array([event.reference_fits[n].zenith for n in names])
    azi = np.array([event.reference_fits[n].azimuth for n in names])
    ra, dec = detector_to_equatorial(zen, azi, event.mjd)
    rows: dict[str, dict[str, Any]] = {
        name: {
            "zenith_deg": math.degrees(float(zen[i])),
            "azimuth_deg": math.degrees(float(azi[i])),
            "ra_deg": math.degrees(float(ra[i])),
            "dec_deg": math.degrees(float(dec[i])),
        }
        for i, name in enumerate(names)
    }
    best = analysis.best if analysis is not None else None
    if best is None:
        return rows
    b_ra, b_dec = best.radec
    offsets = np.degrees(angular_distance(b_ra, b_dec, ra, dec))
    ts = 2.0 * (analysis.map.llh[analysis.map.lookup(ra, dec)] - best.llh)  # type: ignore[union-attr]
    for i, name in enumerate(names):
        rows[name].update(offset_deg=float(offsets[i]), map_2dllh=_num(ts[i]))
    return rows


def event_summary(event: Event) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "event_id": event.event_id,
        "mjd": event.mjd,
        "event_type": event.event_type,
        "is_real_event": event.is_real_event,
    }


@dataclass
class Analysis:
    """The multi-order map of a set of fitted pixels and its error regions."""

    complete: Mapping[PixelKey, PixelBest]
    best: PixelBest | None
    level_set: str
    levels: dict[float, float]  # containment -> 2*dLLH level
    finest_nside: int

    @cached_property
    def map(self) -> MultiOrderMap:
        return build_multiorder(self.complete)

    @cached_property
    def regions(self) -> list[contours.Region]:
        if self.best is None:
            return []
        ra, dec = self.best.radec
        return contours.regions(self.map, self.best.llh, ra, dec, self.levels, self.finest_nside)

    @cached_property
    def probdensity(self) -> np.ndarray:
        """sr^-1 per tile; exp(-dLLH) normalised over the sky."""
        return probdensity(self.map, None if self.best is None else self.best.llh)

    @cached_property
    def credible_areas(self) -> dict[str, float]:
        if self.best is None:
            return {}
        return contours.credible_areas(self.map, self.best.llh, (0.5, 0.9))

    @cached_property
    def unresolved(self) -> dict[str, Any] | None:
        """What of the 90% region is not resolved at the finest nside (see :func:`unresolved_summary`)."""
        return unresolved_summary(self)

    def region_for(self, containment: float) -> contours.Region | None:
        return next((r for r in self.regions if abs(r.containment - containment) < 1e-9), None)

    @cached_property
    def ts_field(self) -> contours.TsField | None:
        """2*dLLH interpolated around the widest region: the contour lines and polygons share it."""
        if self.best is None or not self.regions:
            return None
        level = max(r.level for r in self.regions)
        return contours.ts_field(self.map, self.best.llh, *self.best.radec, level)

    @cached_property
    def contour_set(self) -> contours.ContourSet:
        """The contour line of each region's level."""
        levels = tuple(r.level for r in self.regions)
        if self.best is None:
            return contours.ContourSet(levels, tuple(() for _ in levels), tuple(0.0 for _ in levels))
        ra, dec = self.best.radec
        return contours.trace_contours(self.map, self.best.llh, ra, dec, levels, field=self.ts_field)

    def region_polygons(self, region: contours.Region) -> list[list[contours.Ring]]:
        """A region as longitude/latitude polygons (see :func:`contours.region_polygons`)."""
        if self.best is None:
            return []
        ra, dec = self.best.radec
        return contours.region_polygons(self.map, self.best.llh, ra, dec, region.level, self.ts_field)


def analyse(
    complete: Mapping[PixelKey, PixelBest],
    level_set: str | Mapping[float, float] | contours.LevelSet = contours.DEFAULT_LEVEL_SET,
    finest_nside: int | None = None,
) -> Analysis:
    name, levels = contours.resolve_levels(level_set)
    finest = finest_nside or max((k[0] for k in complete), default=1)
    return Analysis(complete, global_best(complete), name, levels, finest)


def regions_summary(analysis: Analysis) -> dict[str, Any] | None:
    if analysis.best is None:
        return None
    return {
        "statistic": "2*(llh - llh_best)",
        "level_set": analysis.level_set,
        "finest_nside": analysis.finest_nside,
        "levels": {f"{r.containment * 100:g}": r.to_dict() for r in analysis.regions},
        "unresolved": analysis.unresolved,
    }


def unresolved_summary(analysis: Analysis) -> dict[str, Any] | None:
    """The shortfall of the 90% region (the widest without one) at the finest nside, or None.

    ``fraction`` is the share of the region's area shown by fits coarser than the finest nside;
    with ``boundary_resolved`` false the region touches such pixels, so it may reach further.
    """
    r = analysis.region_for(contours.flagged_containment(analysis.levels)) if analysis.regions else None
    if r is None or (r.resolved_fraction >= 1.0 and r.boundary_resolved):
        return None
    fraction = 1.0 - r.resolved_fraction
    pct = f"{r.containment * 100:g}%"
    if fraction > 0:
        shown = f"{fraction:.0%}" if fraction >= 0.01 else "<1%"
        message = (
            f"{shown} of the {pct} region ({fraction * r.area_deg2:.3g} deg2) is not resolved at "
            f"nside {analysis.finest_nside}: its area and errors are approximate"
        )
    else:
        message = (
            f"the {pct} region borders pixels not fitted at nside {analysis.finest_nside}: "
            "it may reach further"
        )
    return {
        "containment": r.containment,
        "fraction": fraction,
        "area_deg2": fraction * r.area_deg2,
        "finest_nside": analysis.finest_nside,
        "boundary_resolved": r.boundary_resolved,
        "message": message,
    }


def probability_summary(analysis: Analysis) -> dict[str, Any] | None:
    if analysis.best is None:
        return None
    mom = analysis.map
    return {
        "map": "exp(-(llh - llh_best)), normalised over the sky",
        "credible_areas_deg2": analysis.credible_areas,
        "n_tiles": len(mom),
        "max_order": mom.max_order,
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
    level_set: str | Mapping[float, float] | contours.LevelSet = contours.DEFAULT_LEVEL_SET,
) -> dict[str, Any]:
    """The result document: pixels, best fit, error regions, truth comparison.

    ``complete`` is False while the scan runs. ``level_set`` picks the 2*dLLH levels of the regions
    (``wilks``, ``icecube-sim`` or ``"50:1.39,90:4.61"``).
    """
    analysis = analyse(complete, level_set, max(nsides) if nsides else None)
    best = analysis.best
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
        "regions": regions_summary(analysis),
        "probability": probability_summary(analysis),
        "pixels": pixel_rows(complete),
    }
    if best is not None and event.truth is not None:
        doc["truth"] = truth_summary(event, best, llh_at_truth)
    if event.reference_fits:
        doc["reference_fits"] = reference_fits_summary(event, analysis)
    return doc


def analysis_from_result(
    doc: Mapping[str, Any], level_set: str | Mapping[float, float] | None = None
) -> Analysis:
    """Rebuild the analysis of a stored result document (its own level set unless one is given).

    A named fixed set is looked up by its name; any other (a reco's calibrated levels, which depend
    on the event, or a custom set) is rebuilt from the levels the document stores, so that every
    product of a scan draws the regions its result states."""
    regions = doc.get("regions") or {}
    stored = regions.get("level_set")
    if level_set is None:
        stored_levels = {v["containment"]: v["level"] for v in (regions.get("levels") or {}).values()}
        if stored in contours.LEVEL_SETS:
            level_set = stored
        elif stored_levels:
            level_set = contours.LevelSet(str(stored), stored_levels)
        else:
            level_set = contours.DEFAULT_LEVEL_SET
    nsides = doc.get("nsides") or []
    return analyse(pixels_from_result(doc), level_set, max(nsides) if nsides else None)


def pixels_from_result(doc: Mapping[str, Any]) -> dict[PixelKey, PixelBest]:
    """Inverse of :func:`pixel_rows`, for exports that start from a stored result document."""
    out: dict[PixelKey, PixelBest] = {}
    for row in doc["pixels"]:
        llh = row.get("llh")
        fit = {c: (np.nan if row.get(c) is None else float(row[c])) for c in FIT_COLUMNS}
        out[(row["nside"], row["pixel"])] = PixelBest(
            row["nside"],
            row["pixel"],
            math.nan if llh is None else float(llh),
            row.get("variation", 0),
            fit,
            row.get("status") == "failed",
            row.get("error"),
        )
    return out
