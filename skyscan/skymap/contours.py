"""Error regions of a likelihood map: levels on 2*dLLH, areas, RA/Dec errors and contour lines.

The statistic is ``TS = 2 * (llh - llh_best)`` with ``llh = -lnL``. A region at a level holds the
tiles of the multi-order map whose TS is at most the level; its area is summed on the sphere (exact
for the tiling). Level sets:

* ``wilks``: chi-square quantiles for 2 degrees of freedom, 1.39 (50%) and 4.61 (90%).
* ``icecube-sim``: IceCube's simulation-calibrated values 22.2 (50%) and 64.2 (90%) (alias
  ``systematics``).
* a custom spec ``"50:1.39,90:4.61"`` (percent:level).
* a reco's simulation-calibrated set (:class:`LevelCalibration`, evaluated for one event into a
  named :class:`LevelSet`); it is the reco's default when a scan asks for none.

Contour lines (for GeoJSON and plots) are traced on a linear interpolation over tile centres in a
frame rotated so the best fit sits at (0, 0), so RA = 0 and the poles need no special care.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import cached_property

import contourpy
import healpy as hp
import numpy as np
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

from skyscan.skymap.multiorder import SR_TO_DEG2, MultiOrderMap, credible_area_deg2, probdensity

LEVEL_SETS: dict[str, dict[float, float]] = {
    "wilks": {0.5: 1.39, 0.9: 4.61},
    "icecube-sim": {0.5: 22.2, 0.9: 64.2},
}
LEVEL_SET_ALIASES = {"systematics": "icecube-sim", "ic160427a": "icecube-sim", "chi2": "wilks"}
DEFAULT_LEVEL_SET = "wilks"


@dataclass(frozen=True)
class LevelSet:
    """A named set of {containment: 2*dLLH level}, e.g. a reco's calibrated levels for one event."""

    name: str
    levels: Mapping[float, float]


@dataclass(frozen=True)
class LevelCalibration:
    """Levels calibrated on simulation as a function of what a scan knows about its event.

    ``ln level_q = offset_q + slope_doms ln(n_doms / 100) + slope_charge ln(charge / 1000 PE)``:
    the scale of 2*dLLH at the truth grows with the number of DOMs (model errors add up per DOM)
    and the charge; the offsets are the containment quantiles of the residuals.
    """

    name: str
    offsets: Mapping[float, float]  # containment -> offset
    slope_doms: float
    slope_charge: float
    n_events: int
    source: str = ""

    def level_set(self, n_doms: int, total_charge_pe: float) -> LevelSet:
        x_doms = math.log(max(n_doms, 1) / 100.0)
        x_charge = math.log(max(total_charge_pe, 1.0) / 1000.0)
        trend = self.slope_doms * x_doms + self.slope_charge * x_charge
        return LevelSet(
            self.name, {c: round(math.exp(o + trend), 3) for c, o in sorted(self.offsets.items())}
        )

    def to_json_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "offsets": {f"{c:g}": o for c, o in self.offsets.items()},
            "slope_doms": self.slope_doms,
            "slope_charge": self.slope_charge,
            "n_events": self.n_events,
            "source": self.source,
        }

    @classmethod
    def from_json_dict(cls, doc: Mapping[str, object]) -> LevelCalibration:
        offsets = doc["offsets"]
        assert isinstance(offsets, Mapping)
        return cls(
            name=str(doc["name"]),
            offsets={float(c): float(o) for c, o in offsets.items()},
            slope_doms=float(doc["slope_doms"]),  # type: ignore[arg-type]
            slope_charge=float(doc["slope_charge"]),  # type: ignore[arg-type]
            n_events=int(doc["n_events"]),  # type: ignore[call-overload]
            source=str(doc.get("source", "")),
        )


def calibrate_levels(
    name: str,
    delta_2llh: np.ndarray,
    n_doms: np.ndarray,
    total_charge_pe: np.ndarray,
    containments: tuple[float, ...] = (0.5, 0.9),
    source: str = "",
    two_feature_min: int = 100,
) -> LevelCalibration:
    """Fit a :class:`LevelCalibration` to 2*dLLH at the truth of simulated events.

    Slopes by least squares of ln(2*dLLH) on the log features (values floored at 0.1, so a truth
    at the minimum does not dominate), clipped to [0, 2] (model errors add up with the DOMs; they
    do not shrink); below ``two_feature_min`` events only the DOM slope is fitted, because the two
    features are strongly correlated. Offsets are the containment quantiles of the residuals.
    """
    d = np.asarray(delta_2llh, float)
    keep = np.isfinite(d)
    d, n, q = d[keep], np.asarray(n_doms, float)[keep], np.asarray(total_charge_pe, float)[keep]
    if d.size < 10:
        raise ValueError("need at least 10 events to calibrate levels")
    y = np.log(np.maximum(d, 0.1))
    x_doms = np.log(np.maximum(n, 1) / 100.0)
    x_charge = np.log(np.maximum(q, 1.0) / 1000.0)
    columns = [np.ones_like(y), x_doms] + ([x_charge] if d.size >= two_feature_min else [])
    coef, *_ = np.linalg.lstsq(np.column_stack(columns), y, rcond=None)
    slope_doms = float(np.clip(coef[1], 0.0, 2.0))
    slope_charge = float(np.clip(coef[2], 0.0, 2.0)) if len(coef) > 2 else 0.0
    resid = y - slope_doms * x_doms - slope_charge * x_charge
    offsets = {c: float(np.quantile(resid, c)) for c in containments}
    return LevelCalibration(name, offsets, slope_doms, slope_charge, int(d.size), source)


def resolve_levels(
    spec: str | Mapping[float, float] | LevelSet = DEFAULT_LEVEL_SET,
) -> tuple[str, dict[float, float]]:
    """Name and {containment: 2*dLLH level} of a level set (a known name or ``"50:1.39,90:4.61"``)."""
    if isinstance(spec, LevelSet):
        name, levels = spec.name, {float(k): float(v) for k, v in spec.levels.items()}
    elif isinstance(spec, Mapping):
        levels = {float(k): float(v) for k, v in spec.items()}
        name = "custom"
    else:
        key = LEVEL_SET_ALIASES.get(spec.strip().lower(), spec.strip().lower())
        if key in LEVEL_SETS:
            return key, dict(LEVEL_SETS[key])
        levels = {}
        for item in (s for s in spec.replace(" ", "").split(",") if s):
            head, sep, tail = item.partition(":")
            try:
                pct, value = float(head), float(tail)
            except ValueError:
                raise ValueError(
                    f"unknown level set {spec!r}; use {', '.join(LEVEL_SETS)} or 'percent:level,...'"
                ) from None
            if not sep:
                raise ValueError(f"level item {item!r} is not 'percent:level'")
            levels[pct / 100.0] = value
        name = "custom"
    if not levels:
        raise ValueError("a level set needs at least one level")
    for containment, value in levels.items():
        if not 0.0 < containment < 1.0:
            raise ValueError(f"containment {containment * 100:g}% is not within (0, 100)")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"level {value} must be a positive 2*dLLH")
    return name, dict(sorted(levels.items()))


def level_for(spec: str | Mapping[float, float] | LevelSet, containment: float = 0.9) -> float:
    _, levels = resolve_levels(spec)
    if containment not in levels:
        raise ValueError(f"level set has no {containment * 100:g}% level")
    return levels[containment]


def flagged_containment(levels: Mapping[float, float]) -> float:
    """The containment whose region must be resolved: 90%, or the widest of a set without it."""
    return 0.9 if 0.9 in levels else max(levels)


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A region {TS <= level}; RA/Dec errors as alert notices give them (degrees, both positive).

    ``ra_err_*`` are offsets in RA (not scaled by cos Dec) of the region's extreme tile corners from
    the best fit; a region holding a pole gets 180 in RA. ``resolved_fraction`` is the share of the
    area shown by fits at the finest nside; ``boundary_resolved`` says that the region and the ring
    of finest-nside pixels around it are all fitted at the finest nside (so the boundary is not
    cut short by coarse pixels).
    """

    containment: float
    level: float
    area_deg2: float
    ra_err_plus_deg: float
    ra_err_minus_deg: float
    dec_err_plus_deg: float
    dec_err_minus_deg: float
    n_tiles: int
    resolved_fraction: float
    contains_pole: bool
    boundary_resolved: bool = False

    def to_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


def ts_map(mom: MultiOrderMap, llh_best: float) -> np.ndarray:
    return 2.0 * (mom.llh - llh_best)


def region_mask(mom: MultiOrderMap, llh_best: float, level: float) -> np.ndarray:
    ts = ts_map(mom, llh_best)
    return np.isfinite(ts) & (ts <= level)


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + np.pi) % (2 * np.pi) - np.pi


def region(
    mom: MultiOrderMap,
    llh_best: float,
    best_ra: float,
    best_dec: float,
    containment: float,
    level: float,
    finest_nside: int | None = None,
) -> Region:
    mask = region_mask(mom, llh_best, level)
    idx = np.flatnonzero(mask)
    area = float(mom.area_sr[idx].sum() * SR_TO_DEG2)
    if idx.size == 0:
        return Region(containment, level, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0.0, False)
    finest = int(finest_nside or mom.source_nside.max())
    resolved = float(mom.area_sr[idx][mom.source_nside[idx] >= finest].sum() * SR_TO_DEG2) / area
    boundary_ok = _boundary_resolved(mom, idx, finest)
    poles = mom.lookup(np.array([0.0, 0.0]), np.array([np.pi / 2, -np.pi / 2]))
    north, south = bool(mask[poles[0]]), bool(mask[poles[1]])
    ra_c, dec_c = mom.boundaries_radec(idx)
    ra_c = np.concatenate([ra_c.ravel(), mom.radec[0][idx]])
    dec_c = np.concatenate([dec_c.ravel(), mom.radec[1][idx]])
    if north or south:
        ra_plus = ra_minus = 180.0
    else:
        dra = np.degrees(_wrap(ra_c - best_ra))
        ra_plus, ra_minus = max(float(dra.max()), 0.0), max(float(-dra.min()), 0.0)
    dec_plus = (
        90.0 - math.degrees(best_dec) if north else max(math.degrees(float(dec_c.max()) - best_dec), 0.0)
    )
    dec_minus = (
        math.degrees(best_dec) + 90.0 if south else max(math.degrees(best_dec - float(dec_c.min())), 0.0)
    )
    return Region(
        containment,
        level,
        area,
        ra_plus,
        ra_minus,
        dec_plus,
        dec_minus,
        int(idx.size),
        resolved,
        north or south,
        boundary_ok,
    )


def _boundary_resolved(mom: MultiOrderMap, idx: np.ndarray, finest_nside: int) -> bool:
    """True when every region tile and every finest-nside neighbour of it shows a finest-nside fit."""
    if np.any(mom.source_nside[idx] < finest_nside):
        return False
    order = finest_nside.bit_length() - 1
    if np.any(mom.order[idx] != order):
        return False
    nbrs = np.asarray(hp.get_all_neighbours(finest_nside, mom.nest[idx], nest=True)).ravel()
    nbrs = np.unique(nbrs[nbrs >= 0])
    return bool(np.all(mom.source_nside[mom.tile_of_nest(order, nbrs)] >= finest_nside))


def regions(
    mom: MultiOrderMap,
    llh_best: float,
    best_ra: float,
    best_dec: float,
    levels: Mapping[float, float],
    finest_nside: int | None = None,
) -> list[Region]:
    return [region(mom, llh_best, best_ra, best_dec, c, lv, finest_nside) for c, lv in sorted(levels.items())]


def credible_areas(
    mom: MultiOrderMap, llh_best: float, containments: tuple[float, ...] = (0.5, 0.9)
) -> dict[str, float]:
    """Areas (deg^2) of the probability map's highest-density credible regions, keyed by percent."""
    density = probdensity(mom, llh_best)
    return {f"{c * 100:g}": credible_area_deg2(density, mom.area_sr, c) for c in containments}


def max_offset_deg(mom: MultiOrderMap, mask: np.ndarray, best_ra: float, best_dec: float) -> float:
    """Radius (deg) of the smallest circle about the best fit that holds every tile of ``mask``."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return 0.0
    ra_c, dec_c = mom.boundaries_radec(idx)
    cos_d = np.sin(dec_c) * math.sin(best_dec) + np.cos(dec_c) * math.cos(best_dec) * np.cos(ra_c - best_ra)
    return math.degrees(float(np.arccos(np.clip(cos_d, -1.0, 1.0)).max()))


# --------------------------------------------------------------------------------------------
# Contour lines
# --------------------------------------------------------------------------------------------


def _frame(ra0: float, dec0: float) -> np.ndarray:
    """Rows: unit vectors of the best fit, local east and local north."""
    c = np.array([math.cos(dec0) * math.cos(ra0), math.cos(dec0) * math.sin(ra0), math.sin(dec0)])
    e = np.array([-math.sin(ra0), math.cos(ra0), 0.0])
    n = np.cross(c, e)
    return np.stack([c, e, n])


def to_local(ra: np.ndarray, dec: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) -> (lon, lat) in a frame with the best fit at (0, 0), lon growing to the east."""
    v = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)
    w = v @ _frame(ra0, dec0).T
    return np.arctan2(w[..., 1], w[..., 0]), np.arcsin(np.clip(w[..., 2], -1.0, 1.0))


def from_local(lon: np.ndarray, lat: np.ndarray, ra0: float, dec0: float) -> tuple[np.ndarray, np.ndarray]:
    w = np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)
    v = w @ _frame(ra0, dec0)
    return np.mod(np.arctan2(v[..., 1], v[..., 0]), 2 * np.pi), np.arcsin(np.clip(v[..., 2], -1.0, 1.0))


@dataclass(frozen=True)
class ContourSet:
    """Contour lines per level; each line an (n, 2) array of (RA, Dec) in radians."""

    levels: tuple[float, ...]
    lines: tuple[tuple[np.ndarray, ...], ...]
    areas_deg2: tuple[float, ...]  # area enclosed by the closed lines of each level


def _local_window(mom: MultiOrderMap, ts: np.ndarray, level: float, ra0: float, dec0: float) -> float:
    inside = np.isfinite(ts) & (ts <= level)
    if not inside.any():
        return float(4 * mom.size_rad.min())
    lon, lat = to_local(mom.radec[0][inside], mom.radec[1][inside], ra0, dec0)
    extent = float(np.max(np.maximum(np.abs(lon), np.abs(lat))))
    return min(math.pi, extent + 3 * float(mom.size_rad[inside].max()))


@dataclass(frozen=True, eq=False)
class TsField:
    """2*dLLH near the best fit, interpolated linearly over the tile centres in the local frame.

    Holes in the triangulation take the nearest centre's value; tiles without a fit count as the
    largest 2*dLLH of the map (outside every region).
    """

    ra0: float
    dec0: float
    half: float  # half-width (rad) of the local window that holds the widest region, padded
    step: float  # grid step (rad) that resolves the finest tiles of that region
    points: np.ndarray  # (n, 2) local (lon, lat) of the tile centres used
    values: np.ndarray

    @cached_property
    def _linear(self) -> LinearNDInterpolator | None:
        try:
            return LinearNDInterpolator(self.points, self.values)
        except Exception:  # fewer than 3 or collinear points: no triangulation
            return None

    @cached_property
    def _nearest(self) -> NearestNDInterpolator:
        return NearestNDInterpolator(self.points, self.values)

    def at_local(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        lon, lat = np.asarray(lon, float), np.asarray(lat, float)
        linear = self._linear
        z = np.full(lon.shape, np.nan) if linear is None else np.asarray(linear(lon, lat), float)
        holes = ~np.isfinite(z)
        if holes.any():
            z[holes] = self._nearest(lon[holes], lat[holes])
        return z

    def at(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        return self.at_local(*to_local(np.asarray(ra, float), np.asarray(dec, float), self.ra0, self.dec0))


def ts_field(
    mom: MultiOrderMap, llh_best: float, best_ra: float, best_dec: float, level: float
) -> TsField | None:
    """The interpolated 2*dLLH around the region {TS <= level}; None for a map with no finite fit."""
    ts = ts_map(mom, llh_best)
    finite = np.isfinite(ts)
    if not finite.any():
        return None
    half = _local_window(mom, ts, level, best_ra, best_dec)
    lon_all, lat_all = to_local(mom.radec[0], mom.radec[1], best_ra, best_dec)
    pad = 2.0 * float(mom.size_rad[(np.abs(lon_all) <= half) & (np.abs(lat_all) <= half)].max(initial=0.0))
    sel = (np.abs(lon_all) <= half + pad) & (np.abs(lat_all) <= min(half + pad, math.pi / 2))
    values = np.where(finite, ts, float(np.nanmax(ts)))[sel]
    inside = finite & (ts <= level)
    step = float(mom.size_rad[inside].min()) / 2 if inside.any() else float(mom.size_rad.min())
    points = np.column_stack([lon_all[sel], lat_all[sel]])
    return TsField(best_ra, best_dec, half, step, points, values)


def trace_contours(
    mom: MultiOrderMap,
    llh_best: float,
    best_ra: float,
    best_dec: float,
    levels: tuple[float, ...],
    max_grid: int = 400,
    field: TsField | None = None,
) -> ContourSet:
    """Trace TS = level lines by linear interpolation over the tile centres around the best fit.

    ``field``, when given, must come from :func:`ts_field` for the widest of ``levels``."""
    if field is None and levels:
        field = ts_field(mom, llh_best, best_ra, best_dec, max(levels))
    if field is None:
        return ContourSet(tuple(levels), tuple(() for _ in levels), tuple(0.0 for _ in levels))
    half = field.half
    n = int(min(max_grid, max(50, math.ceil(2 * half / max(field.step, 1e-9)))))
    lon_g = np.linspace(-half, half, n)
    lat_g = np.linspace(-min(half, math.pi / 2), min(half, math.pi / 2), n)
    glon, glat = np.meshgrid(lon_g, lat_g)
    z = field.at_local(glon, glat)
    gen = contourpy.contour_generator(lon_g, lat_g, z, line_type=contourpy.LineType.Separate)
    all_lines: list[tuple[np.ndarray, ...]] = []
    areas: list[float] = []
    for level in levels:
        lines = []
        total = 0.0
        for seg in gen.lines(level):
            seg = np.asarray(seg, float)
            if seg.shape[0] < 2:
                continue
            if np.allclose(seg[0], seg[-1]):
                # equal-area (lon, sin lat) plane: shoelace gives the enclosed solid angle
                x, y = seg[:, 0], np.sin(seg[:, 1])
                total += abs(0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])))
            ra, dec = from_local(seg[:, 0], seg[:, 1], best_ra, best_dec)
            lines.append(np.column_stack([ra, dec]))
        all_lines.append(tuple(lines))
        areas.append(total * SR_TO_DEG2)
    return ContourSet(tuple(levels), tuple(all_lines), tuple(areas))


# --------------------------------------------------------------------------------------------
# Region polygons (longitude/latitude, as GeoJSON wants them)
# --------------------------------------------------------------------------------------------

Ring = np.ndarray  # (n, 2) of (longitude, latitude) in degrees, closed (first == last)


def region_polygons(
    mom: MultiOrderMap,
    llh_best: float,
    best_ra: float,
    best_dec: float,
    level: float,
    field: TsField | None = None,
    max_grid: int = 600,
) -> list[list[Ring]]:
    """The region {TS <= level} as polygons on the longitude/latitude plane, in degrees.

    Longitude is RA in [-180, 180]. Each polygon is its exterior ring (counter-clockwise) and its
    holes (clockwise). The interpolated 2*dLLH is filled-contoured on a longitude/latitude grid
    over the region's bounding box, one grid each side of the antimeridian, so a region across
    it comes out as one polygon per side, and a region holding a pole is closed along latitude
    +-90 (the pole is a grid row).
    """
    idx = np.flatnonzero(region_mask(mom, llh_best, level))
    if idx.size == 0:
        return []
    field = field or ts_field(mom, llh_best, best_ra, best_dec, level)
    if field is None:
        return []
    ra_c, dec_c = mom.boundaries_radec(idx)
    ra_c = np.concatenate([ra_c.ravel(), mom.radec[0][idx]])
    dec_c = np.concatenate([dec_c.ravel(), mom.radec[1][idx]])
    pad = 2.0 * float(mom.size_rad[idx].max())  # lines cross between region and outside centres
    dec_lo = max(-math.pi / 2, float(dec_c.min()) - pad)
    dec_hi = min(math.pi / 2, float(dec_c.max()) + pad)
    centre = math.remainder(best_ra, 2 * math.pi)
    lo, hi = -math.pi, math.pi
    if -math.pi / 2 < dec_lo and dec_hi < math.pi / 2:
        dra = _wrap(ra_c - best_ra)
        widen = pad / math.cos(max(abs(dec_lo), abs(dec_hi)))
        if float(dra.max() - dra.min()) + 2 * widen < 2 * math.pi:
            lo, hi = centre + float(dra.min()) - widen, centre + float(dra.max()) + widen
    cos_edge = 1.0 if dec_lo < 0 < dec_hi else math.cos(min(abs(dec_lo), abs(dec_hi)))
    polygons: list[list[Ring]] = []
    for shift in (-2 * math.pi, 0.0, 2 * math.pi):  # the parts of [lo, hi] in [-pi, pi], shifted
        a, b = max(lo + shift, -math.pi), min(hi + shift, math.pi)
        if b - a <= 1e-12:
            continue
        n_lon = int(min(max_grid, max(50, math.ceil((b - a) * cos_edge / field.step) + 1)))
        n_lat = int(min(max_grid, max(50, math.ceil((dec_hi - dec_lo) / field.step) + 1)))
        lon_g, lat_g = np.linspace(a, b, n_lon), np.linspace(dec_lo, dec_hi, n_lat)
        glon, glat = np.meshgrid(lon_g, lat_g)
        z = field.at(glon, glat)
        gen = contourpy.contour_generator(lon_g, lat_g, z, fill_type=contourpy.FillType.OuterOffset)
        points, offsets = gen.filled(min(float(z.min()), 0.0) - 1.0, level)
        for pts, offs in zip(points, offsets, strict=True):
            rings = [np.degrees(pts[i:j]) for i, j in zip(offs[:-1], offs[1:], strict=True)]
            polygons.append([_oriented(r, ccw=(k == 0)) for k, r in enumerate(rings)])
    return polygons


def _oriented(ring: Ring, ccw: bool) -> Ring:
    x, y = ring[:, 0], ring[:, 1]
    signed = float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1]))
    return ring if (signed > 0) == ccw else ring[::-1]
