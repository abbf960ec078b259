"""Multi-order map assembly and the result document (``skydriver.skymap/1``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyscan.refinement.fits import PixelBest
from skyscan.refinement.strategies import make_strategy
from skyscan.sky import pixels as px
from skyscan.skymap.assembly import (
    SKYMAP_SCHEMA,
    analyse,
    analysis_from_result,
    build_result,
    pixels_from_result,
)
from skyscan.skymap.multiorder import (
    MAX_ORDER,
    MultiOrderMap,
    build_multiorder,
    credible_area_deg2,
    probability,
    probdensity,
)
from tests.support.skymaps import FIT, drive, full_map, gaussian_llh, make_doc, make_event


def pb(nside: int, pixel: int, llh: float, failed: bool = False) -> PixelBest:
    return PixelBest(
        nside, pixel, math.nan if failed else llh, 0, dict(FIT), failed, "boom" if failed else None
    )


def assert_tiles_sphere(mom: MultiOrderMap) -> None:
    """Tiles are disjoint and cover the sphere: their NESTED ranges at order 29 abut exactly."""
    start = mom.nest << (2 * (MAX_ORDER - mom.order))
    length = np.left_shift(np.int64(1), 2 * (MAX_ORDER - mom.order))
    assert start[0] == 0
    assert np.all(start[1:] == (start + length)[:-1])
    assert (start + length)[-1] == 12 * 4**MAX_ORDER
    assert mom.area_sr.sum() == pytest.approx(4 * math.pi, rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    coarse=st.lists(st.integers(0, 47), min_size=1, max_size=6, unique=True),
    fine_pick=st.lists(st.integers(0, 10_000), max_size=20),
    partial=st.booleans(),
)
def test_multiorder_tiles_the_sphere_and_shows_the_finest_fit(
    coarse: list[int], fine_pick: list[int], partial: bool
) -> None:
    complete = {(2, p): pb(2, p, 50.0 + p) for p in range(48)}
    for c in coarse:  # refine whole coarse pixels at nside 8 ...
        for k in px.children(2, c, 8):
            complete[(8, int(k))] = pb(8, int(k), 10.0 + int(k) % 7)
    fine = [k for k in complete if k[0] == 8]
    for i in fine_pick:  # ... and, when partial, single nside-32 children of some of them
        if partial and fine:
            nside, pixel = fine[i % len(fine)]
            child = int(px.children(8, pixel, 32)[i % 16])
            complete[(32, child)] = pb(32, child, 1.0)
    mom = build_multiorder(complete)
    assert_tiles_sphere(mom)
    # at every nside-32 pixel centre (never on the edge of a scanned pixel) the map shows the finest
    # scanned pixel containing it
    import healpy as hp

    nest32 = np.arange(px.npix(32))
    ra, dec = px.pixel_radec(32, np.asarray(hp.nest2ring(32, nest32)))
    expected = np.full(nest32.size, np.nan)
    source = np.zeros(nest32.size, dtype=np.int64)
    for nside, shift in ((2, 8), (8, 4), (32, 0)):  # coarse to fine: finer overwrite
        keys = {k[1]: v.llh for k, v in complete.items() if k[0] == nside}
        scanned = np.asarray(hp.ring2nest(nside, np.fromiter(keys, np.int64, len(keys))), dtype=np.int64)
        values = np.fromiter(keys.values(), float, len(keys))
        lookup = dict(zip(scanned.tolist(), values.tolist(), strict=True))
        hit = np.isin(nest32 >> shift, scanned)
        expected[hit] = [lookup[int(n)] for n in (nest32 >> shift)[hit]]
        source[hit] = nside
    tiles = mom.lookup(ra, dec)
    np.testing.assert_array_equal(mom.llh[tiles], expected)
    np.testing.assert_array_equal(mom.source_nside[tiles], source)


def test_partly_refined_pixel_keeps_its_value_elsewhere_and_failed_fits_are_ignored() -> None:
    complete = {(1, p): pb(1, p, 100.0 + p) for p in range(12)}
    kids = px.children(1, 5, 4)
    complete[(4, int(kids[0]))] = pb(4, int(kids[0]), 1.0)
    complete[(4, int(kids[1]))] = pb(4, int(kids[1]), 0.0, failed=True)
    complete[(1, 7)] = pb(1, 7, 0.0, failed=True)
    mom = build_multiorder(complete)
    assert_tiles_sphere(mom)
    ra, dec = px.pixel_radec(4, kids)
    values = mom.llh[mom.lookup(ra, dec)]
    assert values[0] == 1.0
    assert np.all(values[1:] == 105.0)  # the failed child shows its parent's fit
    assert np.isnan(mom.llh[mom.lookup(*px.pixel_radec(1, 7))])  # nothing finite covers pixel 7
    assert np.isnan(mom.fit_column(complete, "X")[mom.lookup(*px.pixel_radec(1, 7))])
    assert mom.fit_column(complete, "X")[mom.lookup(ra[0], dec[0])] == FIT["X"]


def test_empty_map_is_twelve_nan_tiles() -> None:
    mom = build_multiorder({})
    assert len(mom) == 12 and np.all(np.isnan(mom.llh))
    assert np.all(probability(mom) == 0)


def test_probability_is_normalised_and_uniq_follows_the_convention() -> None:
    complete = full_map(8, gaussian_llh(1.0, -0.4, 5.0))
    complete.update(full_map(64, gaussian_llh(1.0, -0.4, 5.0), px.children(8, 300, 64)))
    mom = build_multiorder(complete)
    p = probability(mom)
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p >= 0)
    dens = probdensity(mom)
    assert float((dens * mom.area_sr).sum()) == pytest.approx(1.0, abs=1e-12)
    assert np.all(mom.uniq == 4 * mom.nside**2 + mom.nest)
    assert credible_area_deg2(dens, mom.area_sr, 1.0 + 1e-9) == pytest.approx(41252.96, rel=1e-4)


def test_build_result_keeps_its_keys_and_adds_regions() -> None:
    f = gaussian_llh(math.radians(120), math.radians(-20), 1.0)
    strategy = make_strategy("contour", "8,16,32,64,128,256")
    ref = drive(strategy, f)
    event = make_event()
    doc = build_result(
        scan_id="s1",
        event=event,
        reco="synthetic",
        strategy=strategy.describe(),
        nsides=strategy.nsides,
        complete=ref.complete,
        finished=True,
        llh_at_truth=150.0,
    )
    json.dumps(doc, allow_nan=False)  # strict JSON: no NaN anywhere
    assert doc["schema"] == SKYMAP_SCHEMA
    assert doc["complete"] is True and doc["n_pixels"] == len(ref.complete) == len(doc["pixels"])
    best = ref.best()
    assert best is not None
    assert (doc["best_fit"]["nside"], doc["best_fit"]["pixel"]) == (best.nside, best.pixel)
    assert doc["truth"]["delta_2llh"] == pytest.approx(2 * (150.0 - best.llh))
    regs = doc["regions"]
    assert regs["level_set"] == "wilks" and set(regs["levels"]) == {"50", "90"}
    r90 = regs["levels"]["90"]
    assert r90["level"] == 4.61 and r90["resolved_fraction"] == 1.0
    assert r90["area_deg2"] == pytest.approx(14.47, rel=0.02)
    for key in ("ra_err_plus_deg", "ra_err_minus_deg", "dec_err_plus_deg", "dec_err_minus_deg"):
        assert 1.8 < r90[key] < 2.9
    cred = doc["probability"]["credible_areas_deg2"]
    assert cred["90"] == pytest.approx(r90["area_deg2"], rel=0.03)
    # the same numbers come back from the stored document
    again = analysis_from_result(json.loads(json.dumps(doc)))
    assert [r.to_dict() for r in again.regions] == list(regs["levels"].values())
    assert again.credible_areas == cred


def test_level_set_is_selectable_and_survives_the_round_trip() -> None:
    f = gaussian_llh(2.0, 0.5, 3.0)
    complete = full_map(32, f)
    event = make_event()
    doc = make_doc(complete, event, [32], level_set="icecube-sim")
    assert doc["regions"]["level_set"] == "icecube-sim"
    assert doc["regions"]["levels"]["90"]["level"] == 64.2
    assert analysis_from_result(doc).levels == {0.5: 22.2, 0.9: 64.2}
    custom = make_doc(complete, event, [32], level_set="68:2.3")
    assert analysis_from_result(custom).levels == {0.68: 2.3}
    wide = analyse(complete, "icecube-sim").region_for(0.9)
    narrow = analyse(complete, "wilks").region_for(0.9)
    assert wide is not None and narrow is not None and wide.area_deg2 > 5 * narrow.area_deg2


@pytest.mark.parametrize("fmt", ["geojson", "gcn", "fits"])
def test_products_of_a_calibrated_scan_draw_the_regions_its_result_states(fmt: str) -> None:
    """A reco's calibrated levels depend on the event, so they are no fixed named set: a product
    rebuilt from the stored result must use the stored levels, not fall back to Wilks. It did: every
    product of a physics scan, the plots included, drew Wilks regions, about 4x too small in area for
    `pandel-mpe`, the default reco (its calibrated 90% level is about 19, Wilks' 4.61)."""
    from skyscan.skymap.contours import LevelSet
    from skyscan.skymap.exports import render

    complete = full_map(32, gaussian_llh(2.0, 0.5, 3.0))
    calibrated = LevelSet("table-spe-sim", {0.5: 3.1, 0.9: 11.7})
    doc = json.loads(json.dumps(make_doc(complete, make_event(), [32], level_set=calibrated)))
    stored = doc["regions"]
    area90 = stored["levels"]["90"]["area_deg2"]
    assert stored["level_set"] == "table-spe-sim"
    again = analysis_from_result(doc)
    assert again.level_set == "table-spe-sim" and again.levels == {0.5: 3.1, 0.9: 11.7}
    assert [r.to_dict() for r in again.regions] == list(stored["levels"].values())
    wilks = analysis_from_result(doc, "wilks").region_for(0.9)
    assert wilks is not None and area90 > 2 * wilks.area_deg2
    content = render(doc, None, fmt).content
    if fmt == "geojson":
        features = json.loads(content)["features"]
        assert [f["properties"]["level_2dllh"] for f in features] == [3.1, 11.7]
        assert {f["properties"]["level_set"] for f in features} == {"table-spe-sim"}
        assert features[1]["properties"]["area_deg2"] == area90
    elif fmt == "gcn":
        notice = json.loads(content)
        assert notice["additional_info"]["level_set"] == "table-spe-sim"
        assert notice["additional_info"]["area_90_deg2"] == pytest.approx(area90, abs=1e-4)
        assert notice["systematic_included"] is True
    else:
        import io

        from astropy.io import fits

        header = fits.open(io.BytesIO(content))[1].header
        assert header["LEVELSET"] == "table-spe-sim"
        assert header["AREA90"] == pytest.approx(area90)


def test_all_failed_gives_no_best_fit_and_no_regions() -> None:
    complete = {(1, p): pb(1, p, 0.0, failed=True) for p in range(12)}
    doc = make_doc(complete, make_event(), [1])
    assert doc["best_fit"] is None and doc["regions"] is None and doc["probability"] is None
    assert doc["n_failed_pixels"] == 12


def test_pixels_round_trip_through_the_document() -> None:
    complete = {(2, p): pb(2, p, 10.0 + p, failed=(p == 3)) for p in range(48)}
    doc = json.loads(json.dumps(make_doc(complete, make_event(), [2])))
    back = pixels_from_result(doc)
    assert set(back) == set(complete)
    assert back[(2, 3)].failed and math.isnan(back[(2, 3)].llh)
    assert (
        back[(2, 4)].llh == 14.0
        and back[(2, 4)].fit["X"] == FIT["X"]
        and math.isnan(back[(2, 4)].fit["E_in"])
    )
