"""Plots (PNG, PDF): a full-sky Mollweide map of 2*dLLH and a zoom on the best fit, side by side.

The zoom is a gnomonic (tangent-plane, ``RA---TAN``) projection centred on the best fit, drawn by
astropy's WCSAxes, so it works at the poles and across RA 0 and its RA/Dec grid and labels are
those of the sky. Its half-width is set by the 90% region (the widest level of a set without one):
the whole region, tiles and contour line, lies inside. Both panels show the region contours, the
best fit (star), IceCube's reference fits of the event (``reference_fits``: SplineMPE, SPEFit2...)
and, for simulated events, the truth (cross); a marker outside the zoom says so in the legend. RA
grows to the left, as on the sky. Matplotlib's object API on an Agg canvas: no pyplot state.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.colors as mcolors
import numpy as np
from astropy import units as u
from astropy.wcs import WCS
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from skyscan.physics.event import Event
from skyscan.sky.coordinates import angular_distance
from skyscan.skymap.assembly import Analysis
from skyscan.skymap.contours import flagged_containment, max_offset_deg, region_mask
from skyscan.skymap.exports.common import analysis, event_info, reference_radec, require_best, truth_radec

CMAP = "viridis_r"
LINE_COLOURS = ("white", "red", "orange", "magenta")
REFERENCE_STYLES = (("o", "#ff7f0e"), ("s", "#e377c2"), ("D", "#bcbd22"), ("^", "#17becf"), ("v", "#8c564b"))
ZOOM_PIXELS = 400
MAX_ZOOM_DEG = 60.0  # the gnomonic plane stretches fast beyond this
ZOOM_LABEL = "zoom"


@dataclass(frozen=True)
class Markers:
    """Directions to mark (RA, Dec radians): the truth and the reference fits by name."""

    truth: tuple[float, float] | None
    references: dict[str, tuple[float, float]]


def zoom_half_width_deg(an: Analysis) -> float:
    """Half-width of the zoom: the 90% region's farthest tile corner or contour point, plus a margin."""
    assert an.best is not None
    ra0, dec0 = an.best.radec
    radius = 0.0
    if an.regions:
        containment = flagged_containment(an.levels)
        region = an.region_for(containment)
        if region is not None:
            radius = max_offset_deg(an.map, region_mask(an.map, an.best.llh, region.level), ra0, dec0)
            k = an.regions.index(region)
            for line in an.contour_set.lines[k]:
                dist = angular_distance(ra0, dec0, line[:, 0], line[:, 1])
                radius = max(radius, math.degrees(float(np.max(dist))))
    if radius == 0.0:  # no region: a few of the finest tiles
        radius = 3 * math.degrees(float(an.map.size_rad.min()))
    return min(1.15 * radius + 0.02, MAX_ZOOM_DEG)


def zoom_wcs(ra_deg: float, dec_deg: float, half_deg: float, npix: int = ZOOM_PIXELS) -> WCS:
    """A gnomonic projection about (RA, Dec) whose square of ``npix`` pixels holds a disc of ``half_deg``."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [ra_deg % 360.0, dec_deg]
    w.wcs.crpix = [npix / 2 + 0.5, npix / 2 + 0.5]  # FITS pixels start at 1
    scale = math.degrees(math.tan(math.radians(half_deg))) / (npix / 2)
    w.wcs.cdelt = [-scale, scale]  # RA grows to the left
    w.wcs.cunit = ["deg", "deg"]
    return w


def _ts_on(an: Analysis, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    assert an.best is not None
    return 2 * (an.map.llh[an.map.lookup(ra.ravel(), dec.ravel())] - an.best.llh)


def _full_sky(ax: Any, an: Analysis, markers: Markers, lines: Any) -> Any:
    assert an.best is not None
    nx, ny = 720, 360
    lon_e = np.linspace(-math.pi, math.pi, nx + 1)
    lat_e = np.linspace(-math.pi / 2, math.pi / 2, ny + 1)
    lon_c, lat_c = np.meshgrid(0.5 * (lon_e[1:] + lon_e[:-1]), 0.5 * (lat_e[1:] + lat_e[:-1]))
    ra = np.mod(math.pi - lon_c, 2 * math.pi)
    ts = np.ma.masked_invalid(_ts_on(an, ra, lat_c).reshape(ny, nx))
    vmax = float(ts.max()) if ts.count() else 1.0
    mesh = ax.pcolormesh(
        lon_e,
        lat_e,
        ts,
        cmap=CMAP,
        norm=mcolors.PowerNorm(0.3, vmin=0.0, vmax=max(vmax, 1.0)),
        rasterized=True,
    )
    for k, level_lines in enumerate(lines):
        for line in level_lines:
            x = np.mod(math.pi - line[:, 0] + math.pi, 2 * math.pi) - math.pi
            for part in np.split(np.arange(x.size), np.flatnonzero(np.abs(np.diff(x)) > math.pi) + 1):
                ax.plot(x[part], line[part, 1], color=LINE_COLOURS[k % 4], lw=1.0)

    def mollweide_x(ra: float) -> float:
        return math.remainder(math.pi - ra, 2 * math.pi)

    b_ra, b_dec = an.best.radec
    ax.plot([mollweide_x(b_ra)], [b_dec], "*", color="white", mec="black", ms=12)
    for (marker, colour), (ra_r, dec_r) in zip(REFERENCE_STYLES, markers.references.values(), strict=False):
        ax.plot([mollweide_x(ra_r)], [dec_r], marker, color=colour, mec="black", ms=6)
    if markers.truth is not None:
        ax.plot([mollweide_x(markers.truth[0])], [markers.truth[1]], "x", color="cyan", ms=9, mew=2)
    ticks = np.radians(np.arange(-150, 181, 30))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{int(round(math.degrees(math.pi - t))) % 360}°" for t in ticks], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, color="0.6", lw=0.4)
    ax.set_title("Full sky, 2·ΔLLH (RA grows to the left)", fontsize=9)
    return mesh


def _zoom(
    fig: Figure, rect: tuple[float, float, float, float], an: Analysis, markers: Markers, lines: Any
) -> Any:
    assert an.best is not None
    b_ra, b_dec = an.best.radec
    half = zoom_half_width_deg(an)
    wcs = zoom_wcs(math.degrees(b_ra), math.degrees(b_dec), half)
    ax = fig.add_axes(rect, projection=wcs, label=ZOOM_LABEL)
    n = ZOOM_PIXELS
    px_x, px_y = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    ra_deg, dec_deg = wcs.pixel_to_world_values(px_x, px_y)
    ts = np.ma.masked_invalid(_ts_on(an, np.radians(ra_deg), np.radians(dec_deg)).reshape(n, n))
    r90 = an.region_for(flagged_containment(an.levels)) if an.regions else None
    top = max(3 * (r90.level if r90 else 4.61), 10.0)
    image = ax.imshow(
        np.clip(ts, 0, top), origin="lower", cmap=CMAP, vmin=0, vmax=top, interpolation="nearest"
    )

    def to_pixels(ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel positions; NaN on the far hemisphere, where the tangent plane has no image."""
        x, y = wcs.world_to_pixel_values(np.degrees(ra), np.degrees(dec))
        far = np.asarray(angular_distance(b_ra, b_dec, ra, dec)) > math.radians(85.0)
        return np.where(far, np.nan, x), np.where(far, np.nan, y)

    for k, (region, level_lines) in enumerate(zip(an.regions, lines, strict=False)):
        label = f"{region.containment * 100:g}%: {region.area_deg2:.3g} deg²"
        for j, line in enumerate(level_lines):
            x, y = to_pixels(line[:, 0], line[:, 1])
            ax.plot(x, y, color=LINE_COLOURS[k % 4], lw=1.4, label=label if j == 0 else None)
    ax.plot([n / 2 - 0.5], [n / 2 - 0.5], "*", color="white", mec="black", ms=14, label="best fit")

    def mark(direction: tuple[float, float], name: str, **style: Any) -> None:
        x, y = to_pixels(np.array([direction[0]]), np.array([direction[1]]))
        inside = bool(np.isfinite(x[0]) and -0.5 <= x[0] <= n - 0.5 and -0.5 <= y[0] <= n - 0.5)
        if not inside:
            away = math.degrees(float(angular_distance(b_ra, b_dec, *direction)))
            name = (
                f"{name} ({away:.3g}° away, off the zoom)" if len(name) < 12 else f"{name} ({away:.3g}°, off)"
            )
        ax.plot(x if inside else [], y if inside else [], linestyle="none", label=name, **style)

    for (marker, colour), (name, direction) in zip(
        REFERENCE_STYLES, markers.references.items(), strict=False
    ):
        mark(direction, name, marker=marker, color=colour, mec="black", ms=8)
    if markers.truth is not None:
        mark(markers.truth, "truth", marker="x", color="cyan", ms=10, mew=2.5)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(-0.5, n - 0.5)
    ra_axis, dec_axis = ax.coords[0], ax.coords[1]
    ra_axis.set_format_unit(u.deg, decimal=True)
    dec_axis.set_format_unit(u.deg, decimal=True)
    for coord, name in ((ra_axis, "RA (deg)"), (dec_axis, "Dec (deg)")):
        coord.set_axislabel(name, fontsize=8)
        coord.set_ticklabel(size=7)
        coord.grid(True, color="white", alpha=0.7, linestyle="--", linewidth=0.6)
    # below the panel: over the map a legend would hide part of the region
    labels = ax.get_legend_handles_labels()[1]
    ax.legend(
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncol=2 if max(map(len, labels)) <= 28 else 1,  # long fit names: one column stays on the page
        facecolor="0.7",
        framealpha=1.0,
    )
    ax.set_title(f"Zoom, gnomonic, ±{half:.3g}° ({an.level_set} levels)", fontsize=9)
    return ax, image


def figure(doc: Mapping[str, Any], event: Event | None) -> Figure:
    """The plot of a result document (both panels); the zoom's axes carry the label ``zoom``."""
    an = analysis(doc)
    require_best(an, "a plot")
    assert an.best is not None
    info = event_info(doc, event)
    markers = Markers(truth_radec(doc, event), reference_radec(doc, event))
    lines = an.contour_set.lines
    fig = Figure(figsize=(13, 6.2))
    FigureCanvasAgg(fig)  # Agg, whatever pyplot's global backend is
    ax1 = fig.add_axes((0.03, 0.18, 0.55, 0.66), projection="mollweide")
    m1 = _full_sky(ax1, an, markers, lines)
    ax2, m2 = _zoom(fig, (0.64, 0.27, 0.30, 0.58), an, markers, lines)
    cb1 = fig.colorbar(m1, ax=ax1, orientation="horizontal", fraction=0.05, pad=0.08)
    top = float(m1.norm.vmax)
    cb1.set_ticks(sorted({float(f"{top * f:.2g}") for f in (0.0, 0.002, 0.02, 0.1, 0.4, 1.0)}))
    cb1.ax.tick_params(labelsize=7)
    cb1.set_label("2·ΔLLH (colour scale compressed: power 0.3)", fontsize=8)
    fig.colorbar(m2, ax=ax2, fraction=0.046, pad=0.03).set_label("2·ΔLLH", fontsize=8)
    b_ra, b_dec = an.best.radec
    r90 = an.region_for(0.9)
    text = f"best fit RA {math.degrees(b_ra):.2f}°, Dec {math.degrees(b_dec):+.2f}°"
    if r90 is not None:
        text += (
            f"  (90%: RA +{r90.ra_err_plus_deg:.2f} −{r90.ra_err_minus_deg:.2f}, "
            f"Dec +{r90.dec_err_plus_deg:.2f} −{r90.dec_err_minus_deg:.2f}; {r90.area_deg2:.3g} deg²)"
        )
    status = "" if doc.get("complete") else "  [partial result]"
    if an.unresolved is not None:
        status += "  [90% region not fully resolved]"
    fig.suptitle(
        f"{info.label} {info.event_type}  MJD {info.mjd:.5f}  reco {doc.get('reco', '?')}{status}\n{text}",
        fontsize=10,
    )
    return fig


def _save(doc: Mapping[str, Any], event: Event | None, fmt: str, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    figure(doc, event).savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()


def render_png(doc: Mapping[str, Any], event: Event | None) -> bytes:
    return _save(doc, event, "png")


def render_pdf(doc: Mapping[str, Any], event: Event | None) -> bytes:
    """The same figure as a vector PDF (the maps themselves stay raster images inside it)."""
    return _save(doc, event, "pdf")
