"""PNG plots: a full-sky Mollweide map of 2*dLLH and a zoom on the best fit, side by side.

Both panels show the region contours, the best fit (star) and, for simulated events, the truth
(cross). RA grows to the left, as on the sky. Matplotlib's object API on an Agg canvas: no pyplot
state, no display needed.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import matplotlib.colors as mcolors
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from skyscan.physics.event import Event
from skyscan.skymap.assembly import Analysis
from skyscan.skymap.exports.common import analysis, event_info, require_best, truth_radec

CMAP = "viridis_r"
LINE_COLOURS = ("white", "red", "orange", "magenta")


def _full_sky(ax: Any, an: Analysis, truth: tuple[float, float] | None, lines: Any) -> Any:
    assert an.best is not None
    nx, ny = 720, 360
    lon_e = np.linspace(-math.pi, math.pi, nx + 1)
    lat_e = np.linspace(-math.pi / 2, math.pi / 2, ny + 1)
    lon_c, lat_c = np.meshgrid(0.5 * (lon_e[1:] + lon_e[:-1]), 0.5 * (lat_e[1:] + lat_e[:-1]))
    ra = np.mod(math.pi - lon_c, 2 * math.pi)
    ts = 2 * (an.map.llh[an.map.lookup(ra.ravel(), lat_c.ravel())] - an.best.llh)
    ts = np.ma.masked_invalid(ts.reshape(ny, nx))
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
    b_ra, b_dec = an.best.radec
    ax.plot([math.remainder(math.pi - b_ra, 2 * math.pi)], [b_dec], "*", color="white", mec="black", ms=12)
    if truth is not None:
        ax.plot([math.remainder(math.pi - truth[0], 2 * math.pi)], [truth[1]], "x", color="cyan", ms=9, mew=2)
    ticks = np.radians(np.arange(-150, 181, 30))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{int(round(math.degrees(math.pi - t))) % 360}°" for t in ticks], fontsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, color="0.6", lw=0.4)
    ax.set_title("Full sky, 2·ΔLLH (RA grows to the left)", fontsize=9)
    return mesh


def _zoom(ax: Any, an: Analysis, truth: tuple[float, float] | None, lines: Any) -> Any:
    assert an.best is not None
    b_ra, b_dec = an.best.radec
    r90 = an.region_for(0.9) or (an.regions[-1] if an.regions else None)
    cosd = max(math.cos(b_dec), 0.05)
    if r90 is not None and r90.area_deg2 > 0:
        half_dec = max(r90.dec_err_plus_deg, r90.dec_err_minus_deg)
        half_ra = max(r90.ra_err_plus_deg, r90.ra_err_minus_deg) * cosd
        half = 1.6 * max(half_dec, half_ra)
    else:
        half = 1.0
    half = min(max(half, 0.5), 30.0)
    hx, hy = min(half / cosd, 180.0), half
    n = 300
    x_e = np.linspace(-hx, hx, n + 1)
    y_e = np.linspace(math.degrees(b_dec) - hy, math.degrees(b_dec) + hy, n + 1)
    xc, yc = np.meshgrid(0.5 * (x_e[1:] + x_e[:-1]), np.clip(0.5 * (y_e[1:] + y_e[:-1]), -89.999, 89.999))
    ra = np.mod(b_ra + np.radians(xc), 2 * math.pi)
    ts = 2 * (an.map.llh[an.map.lookup(ra.ravel(), np.radians(yc).ravel())] - an.best.llh)
    ts = np.ma.masked_invalid(ts.reshape(n, n))
    top = max(3 * (r90.level if r90 else 4.61), 10.0)
    mesh = ax.pcolormesh(x_e, y_e, np.clip(ts, 0, top), cmap=CMAP, vmin=0, vmax=top, rasterized=True)
    for k, (region, level_lines) in enumerate(zip(an.regions, lines, strict=False)):
        label = f"{region.containment * 100:g}%: {region.area_deg2:.2f} deg²"
        for j, line in enumerate(level_lines):
            dx = np.degrees(np.mod(line[:, 0] - b_ra + math.pi, 2 * math.pi) - math.pi)
            ax.plot(
                dx, np.degrees(line[:, 1]), color=LINE_COLOURS[k % 4], lw=1.4, label=label if j == 0 else None
            )
    ax.plot([0], [math.degrees(b_dec)], "*", color="white", mec="black", ms=14, label="best fit")
    if truth is not None:
        dx = math.degrees(math.remainder(truth[0] - b_ra, 2 * math.pi))
        ax.plot([dx], [math.degrees(truth[1])], "x", color="cyan", ms=10, mew=2.5, label="truth")
    ax.set_xlim(hx, -hx)
    ax.set_ylim(y_e[0], y_e[-1])
    ax.set_aspect(1.0 / cosd)
    ticks = ax.get_xticks()
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{(math.degrees(b_ra) + t) % 360:.4g}" for t in ticks], fontsize=7)
    ax.set_xlim(hx, -hx)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("RA (deg)", fontsize=8)
    ax.set_ylabel("Dec (deg)", fontsize=8)
    ax.legend(fontsize=7, loc="upper right", framealpha=0.7)
    ax.set_title(f"Zoom on the best fit ({an.level_set} levels)", fontsize=9)
    return mesh


def render_png(doc: Mapping[str, Any], event: Event | None, dpi: int = 110) -> bytes:
    an = analysis(doc)
    require_best(an, "a plot")
    assert an.best is not None
    info = event_info(doc, event)
    truth = truth_radec(doc, event)
    lines = an.contour_set().lines
    fig = Figure(figsize=(13, 5.2))
    FigureCanvasAgg(fig)  # Agg, whatever pyplot's global backend is
    ax1 = fig.add_axes((0.03, 0.14, 0.55, 0.72), projection="mollweide")
    ax2 = fig.add_axes((0.62, 0.12, 0.33, 0.76))
    m1 = _full_sky(ax1, an, truth, lines)
    m2 = _zoom(ax2, an, truth, lines)
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
            f"Dec +{r90.dec_err_plus_deg:.2f} −{r90.dec_err_minus_deg:.2f}; {r90.area_deg2:.2f} deg²)"
        )
    status = "" if doc.get("complete") else "  [partial result]"
    fig.suptitle(
        f"{info.label} {info.event_type}  MJD {info.mjd:.5f}  reco {doc.get('reco', '?')}{status}\n{text}",
        fontsize=10,
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
