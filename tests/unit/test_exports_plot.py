"""The plot's zoom panel: gnomonic, holds the whole 90% region, right axes at a pole and across RA 0.

The figure is inspected as drawn (its axes, WCS and lines), for a scan at Dec -85 and one at RA 0.5.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import numpy as np
import pytest

from skyscan.physics.event import Event, parse_event
from skyscan.refinement.strategies import make_strategy
from skyscan.sky.coordinates import angular_distance, equatorial_to_detector
from skyscan.skymap.assembly import analysis_from_result
from skyscan.skymap.contours import region_mask
from skyscan.skymap.exports import plot, render
from tests.support.skymaps import drive, ellipse_area_deg2, gaussian_llh, make_doc, make_event

CASES = {"dec -85": (40.0, -85.0), "ra 0.5": (0.5, 12.0)}


def event_with_fits(ra_deg: float, dec_deg: float) -> Event:
    """An event whose truth is 1 deg from the peak, with one reference fit near and one far away."""
    data = make_event(truth=None).to_json_dict()

    def detector(ra: float, dec: float) -> dict[str, float]:
        zen, az = equatorial_to_detector(math.radians(ra), math.radians(dec), data["mjd"])
        return {"zenith": float(zen), "azimuth": float(az)}

    data["truth"] = detector(ra_deg - 1.0 / math.cos(math.radians(dec_deg)), dec_deg + 0.3)
    data["reference_fits"] = {
        "SplineMPE": detector(ra_deg + 0.5 / math.cos(math.radians(dec_deg)), dec_deg - 0.4),
        "SPEFit2": detector(ra_deg + 20.0, max(-80.0, dec_deg - 30.0)),
    }
    return parse_event(data)


@functools.cache
def scan(case: str) -> tuple[dict[str, Any], Event]:
    ra_deg, dec_deg = CASES[case]
    f = gaussian_llh(math.radians(ra_deg), math.radians(dec_deg), 1.0, 0.6, angle_deg=30.0)
    s = make_strategy("contour", "8,16,32,64,128,256")
    event = event_with_fits(ra_deg, dec_deg)
    return make_doc(drive(s, f).complete, event, s.nsides), event


def zoom_of(doc: dict[str, Any], event: Event) -> Any:
    fig = plot.figure(doc, event)
    (ax,) = [a for a in fig.axes if a.get_label() == plot.ZOOM_LABEL]
    return ax


def inside(ax: Any, x: np.ndarray, y: np.ndarray) -> bool:
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    return bool(np.all(np.isfinite(x)) and np.all((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)))


@pytest.mark.parametrize("case", list(CASES))
def test_the_zoom_holds_the_whole_90_percent_region(case: str) -> None:
    doc, event = scan(case)
    ax = zoom_of(doc, event)
    wcs = ax.wcs
    assert list(wcs.wcs.ctype) == ["RA---TAN", "DEC--TAN"]
    best = doc["best_fit"]
    assert wcs.wcs.crval[0] == pytest.approx(best["ra_deg"]) and wcs.wcs.crval[1] == pytest.approx(
        best["dec_deg"]
    )
    # every corner of every 90% tile is on the panel
    an = analysis_from_result(doc)
    r90 = an.region_for(0.9)
    assert an.best is not None and r90 is not None
    ra_c, dec_c = an.map.boundaries_radec(np.flatnonzero(region_mask(an.map, an.best.llh, r90.level)))
    assert inside(ax, *wcs.world_to_pixel_values(np.degrees(ra_c.ravel()), np.degrees(dec_c.ravel())))
    # and so is every point of the drawn 90% contour line
    lines = [ln for ln in ax.get_lines() if ln.get_label().startswith("90%")]
    assert len(lines) == 1
    assert inside(ax, *lines[0].get_data())
    # not much more than the region: it fills a good part of the panel
    x, y = lines[0].get_data()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert max(np.ptp(x) / (x1 - x0), np.ptp(y) / (y1 - y0)) > 0.6


def shoelace(x: np.ndarray, y: np.ndarray) -> float:
    return abs(0.5 * float(np.dot(x[:-1], y[1:]) - np.dot(x[1:], y[:-1])))


@pytest.mark.parametrize("case", list(CASES))
def test_the_axes_are_the_sky(case: str) -> None:
    doc, event = scan(case)
    ax = zoom_of(doc, event)
    wcs = ax.wcs
    assert ax.coords[0].coord_type == "longitude" and ax.coords[1].coord_type == "latitude"
    n = plot.ZOOM_PIXELS
    px, py = np.meshgrid(np.linspace(-0.5, n - 0.5, 41), np.linspace(-0.5, n - 0.5, 41))
    ra, dec = wcs.pixel_to_world_values(px, py)
    assert np.all(np.isfinite(ra)) and np.all((dec >= -90) & (dec <= 90))
    ra_deg, dec_deg = CASES[case]
    if case == "ra 0.5":  # the panel runs on across RA 0: both sides of it are shown
        assert np.any(ra > 358.0) and np.any(ra < 2.0) and np.all((ra < 10) | (ra > 350))
    else:  # near the pole: north is up, the panel stays on the sphere, no Dec beyond -90
        top, bottom = wcs.pixel_to_world_values([n / 2, n / 2], [n - 0.5, -0.5])[1]
        assert top > dec_deg > bottom > -90
    # the markers sit where their coordinates say
    best = doc["best_fit"]
    star = next(ln for ln in ax.get_lines() if ln.get_label() == "best fit")
    sra, sdec = wcs.pixel_to_world_values(*star.get_data())
    assert (
        math.degrees(
            angular_distance(
                math.radians(best["ra_deg"]), math.radians(best["dec_deg"]), *np.radians([sra[0], sdec[0]])
            )
        )
        < 1e-6
    )
    for name, expected in (("truth", doc["truth"]), ("SplineMPE", doc["reference_fits"]["SplineMPE"])):
        marker = next(ln for ln in ax.get_lines() if ln.get_label() == name)
        mra, mdec = wcs.pixel_to_world_values(*marker.get_data())
        ra0, dec0 = math.radians(expected["ra_deg"]), math.radians(expected["dec_deg"])
        assert math.degrees(angular_distance(ra0, dec0, *np.radians([mra[0], mdec[0]]))) < 1e-6
    # a reference fit off the panel is named in the legend, not drawn at the edge
    far = next(ln for ln in ax.get_lines() if ln.get_label().startswith("SPEFit2"))
    assert "off the zoom" in far.get_label() and len(far.get_xdata()) == 0
    # the labels give the result's areas, and the drawn lines enclose what they say (tangent
    # plane: deg per pixel squared); both differ from the ellipse's exact area by the tile size
    scale = abs(wcs.wcs.cdelt[0])
    for key in ("50", "90"):
        line = next(ln for ln in ax.get_lines() if ln.get_label().startswith(f"{key}%"))
        labelled = float(re.search(r": ([0-9.]+) deg", line.get_label()).group(1))  # type: ignore[union-attr]
        region = doc["regions"]["levels"][key]
        assert labelled == pytest.approx(region["area_deg2"], rel=5e-3)
        drawn = shoelace(*line.get_data()) * scale**2
        assert drawn == pytest.approx(ellipse_area_deg2(1.0, 0.6, region["level"]), rel=0.04)
        assert drawn == pytest.approx(labelled, rel=0.08)


def test_pdf_is_the_same_figure() -> None:
    doc, event = scan("ra 0.5")
    pdf = render(doc, event, "pdf")
    assert pdf.media_type == "application/pdf" and pdf.filename.endswith(".pdf")
    assert pdf.content.startswith(b"%PDF-") and pdf.content.rstrip().endswith(b"%%EOF")
    assert pdf.content.count(b"/Type /Page\n") + pdf.content.count(b"/Type /Page ") == 1
    assert len(pdf.content) > 20_000  # two maps, lines and text, not an empty page


def test_the_result_carries_the_reference_fits() -> None:
    doc, event = scan("dec -85")
    rows = doc["reference_fits"]
    assert set(rows) == {"SplineMPE", "SPEFit2"}
    fit = event.reference_fits["SplineMPE"]
    assert rows["SplineMPE"]["zenith_deg"] == pytest.approx(math.degrees(fit.zenith))
    # the SplineMPE direction was put 0.5 deg east and 0.4 deg south of the peak (near the best fit)
    assert 0.3 < rows["SplineMPE"]["offset_deg"] < 1.2 and rows["SPEFit2"]["offset_deg"] > 5
