"""Regions on 2*dLLH: level sets, areas against analytic Gaussians, RA/Dec errors, contour lines."""

from __future__ import annotations

import math

import healpy as hp
import numpy as np
import pytest

from skyscan.refinement.fits import PixelBest, PixelKey, global_best
from skyscan.sky import pixels as px
from skyscan.sky.coordinates import angular_distance
from skyscan.skymap.contours import (
    LEVEL_SETS,
    credible_areas,
    level_for,
    region,
    regions,
    resolve_levels,
    trace_contours,
)
from skyscan.skymap.multiorder import build_multiorder
from tests.support.skymaps import LlhFunc, cap_area_deg2, ellipse_area_deg2, full_map, gaussian_llh


def refined_map(
    f: LlhFunc, ra0: float, dec0: float, radius_deg: float, fine: int = 512
) -> dict[PixelKey, PixelBest]:
    """nside 8 over the sky, and at nside `fine` every child of the nside-16 pixels near the centre.

    Whole coarse pixels are refined, as a refinement strategy does; a partly refined coarse pixel
    would keep its coarse value on the rest of its area.
    """
    complete = full_map(8, f)
    vec = np.array([math.cos(dec0) * math.cos(ra0), math.cos(dec0) * math.sin(ra0), math.sin(dec0)])
    coarse = hp.query_disc(16, vec, math.radians(radius_deg), inclusive=True)
    pix = np.concatenate([px.children(16, int(c), fine) for c in coarse])
    complete.update(full_map(fine, f, pix))
    return complete


def test_level_sets_by_name_alias_and_spec() -> None:
    assert resolve_levels("wilks") == ("wilks", {0.5: 1.39, 0.9: 4.61})
    assert resolve_levels("systematics") == ("icecube-sim", {0.5: 22.2, 0.9: 64.2})
    assert resolve_levels("ICECUBE-SIM")[1] == LEVEL_SETS["icecube-sim"]
    assert resolve_levels("90:4.61, 50:1.39") == ("custom", {0.5: 1.39, 0.9: 4.61})
    assert resolve_levels({0.68: 2.3}) == ("custom", {0.68: 2.3})
    assert level_for("icecube-sim") == 64.2
    for bad in ("nonsense", "50", "150:2", "50:-1", ""):
        with pytest.raises(ValueError):
            resolve_levels(bad)
    with pytest.raises(ValueError, match="no 90% level"):
        level_for("50:1.39")


def test_wilks_levels_are_chi2_quantiles() -> None:
    from scipy.stats import chi2

    for containment, level in LEVEL_SETS["wilks"].items():
        assert level == pytest.approx(chi2.ppf(containment, 2), abs=0.006)


@pytest.mark.parametrize(
    ("ra_deg", "dec_deg"),
    [(120.0, -20.0), (0.3, 10.0), (359.5, -45.0), (200.0, 70.0)],
)
def test_circular_gaussian_areas_match_analytic(ra_deg: float, dec_deg: float) -> None:
    ra0, dec0, sigma = math.radians(ra_deg), math.radians(dec_deg), 1.0
    f = gaussian_llh(ra0, dec0, sigma)
    complete = refined_map(f, ra0, dec0, 4.0)
    mom = build_multiorder(complete)
    best = global_best(complete)
    assert best is not None and best.nside == 512
    regs = regions(mom, best.llh, *best.radec, LEVEL_SETS["wilks"], 512)
    for reg in regs:
        analytic = cap_area_deg2(sigma, reg.level)
        assert reg.area_deg2 == pytest.approx(analytic, rel=0.02), reg
        assert reg.resolved_fraction == 1.0
        assert not reg.contains_pole
        # errors: the radius in Dec, the radius / cos(dec) in RA, within a fine pixel
        radius = math.degrees(math.atan(math.radians(sigma) * math.sqrt(reg.level)))
        tol = 0.35
        assert reg.dec_err_plus_deg == pytest.approx(radius, abs=tol)
        assert reg.dec_err_minus_deg == pytest.approx(radius, abs=tol)
        ra_radius = radius / math.cos(best.radec[1])
        assert reg.ra_err_plus_deg == pytest.approx(ra_radius, abs=tol / math.cos(best.radec[1]) + 0.1)
        assert reg.ra_err_minus_deg == pytest.approx(ra_radius, abs=tol / math.cos(best.radec[1]) + 0.1)


def test_elliptical_gaussian_area_within_two_percent() -> None:
    ra0, dec0 = math.radians(45.0), math.radians(5.0)
    f = gaussian_llh(ra0, dec0, 1.2, 0.5, angle_deg=30.0)
    complete = refined_map(f, ra0, dec0, 4.5)
    mom = build_multiorder(complete)
    best = global_best(complete)
    assert best is not None
    r90 = region(mom, best.llh, *best.radec, 0.9, 4.61, 512)
    assert r90.area_deg2 == pytest.approx(ellipse_area_deg2(1.2, 0.5, 4.61), rel=0.02)
    r50 = region(mom, best.llh, *best.radec, 0.5, 1.39, 512)
    assert r50.area_deg2 == pytest.approx(ellipse_area_deg2(1.2, 0.5, 1.39), rel=0.02)


def test_probability_credible_areas_match_wilks_for_a_gaussian() -> None:
    ra0, dec0 = math.radians(300.0), math.radians(-60.0)
    f = gaussian_llh(ra0, dec0, 0.8)
    complete = refined_map(f, ra0, dec0, 4.0)
    mom = build_multiorder(complete)
    best = global_best(complete)
    assert best is not None
    areas = credible_areas(mom, best.llh)
    # exp(-dLLH) of a 2-D Gaussian is the Gaussian itself: its 90% HPD region is 2*dLLH <= 4.61
    assert areas["90"] == pytest.approx(cap_area_deg2(0.8, 4.605), rel=0.03)
    assert areas["50"] == pytest.approx(cap_area_deg2(0.8, 1.386), rel=0.03)


def test_region_around_the_pole_spans_all_ra() -> None:
    f = gaussian_llh(0.0, math.radians(89.5), 1.0)
    complete = full_map(64, f)
    mom = build_multiorder(complete)
    best = global_best(complete)
    assert best is not None
    r90 = region(mom, best.llh, *best.radec, 0.9, 4.61, 64)
    assert r90.contains_pole
    assert r90.ra_err_plus_deg == r90.ra_err_minus_deg == 180.0
    assert r90.dec_err_plus_deg == pytest.approx(90.0 - math.degrees(best.radec[1]))


def test_empty_region_when_level_below_every_pixel() -> None:
    complete = full_map(8, gaussian_llh(1.0, 0.2, 1.0))
    mom = build_multiorder(complete)
    reg = region(mom, 50.0, 1.0, 0.2, 0.9, 4.61)
    assert reg.area_deg2 == 0.0 and reg.n_tiles == 0


def test_contour_lines_follow_the_circle_and_enclose_the_region() -> None:
    ra0, dec0, sigma = math.radians(0.5), math.radians(-30.0), 1.0  # straddles RA = 0
    f = gaussian_llh(ra0, dec0, sigma)
    complete = refined_map(f, ra0, dec0, 4.0)
    mom = build_multiorder(complete)
    best = global_best(complete)
    assert best is not None
    cset = trace_contours(mom, best.llh, *best.radec, (1.39, 4.61))
    assert len(cset.lines) == 2
    for level, lines, area in zip(cset.levels, cset.lines, cset.areas_deg2, strict=True):
        assert len(lines) == 1
        line = lines[0]
        assert np.allclose(line[0], line[-1])  # closed
        dist = np.degrees(angular_distance(ra0, dec0, line[:, 0], line[:, 1]))
        radius = math.degrees(math.atan(math.radians(sigma) * math.sqrt(level)))
        assert np.all(np.abs(dist - radius) < 0.1), (dist.min(), dist.max(), radius)
        assert area == pytest.approx(cap_area_deg2(sigma, level), rel=0.02)
        assert np.all((line[:, 0] >= 0) & (line[:, 0] < 2 * math.pi))


def test_contours_on_a_coarse_map_only() -> None:
    f = gaussian_llh(2.0, 0.3, 8.0)
    complete = full_map(16, f)
    mom = build_multiorder(complete)
    best = global_best(complete)
    assert best is not None
    cset = trace_contours(mom, best.llh, *best.radec, (4.61,))
    assert cset.lines[0] and cset.areas_deg2[0] == pytest.approx(cap_area_deg2(8.0, 4.61), rel=0.1)
    assert px.npix(16) == len(mom)
