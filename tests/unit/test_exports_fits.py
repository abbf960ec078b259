"""Multi-order FITS: read back with astropy, columns and headers checked, 90% area recomputed."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from skyscan.refinement.strategies import make_strategy
from skyscan.skymap.exports import render
from tests.support.skymaps import cap_area_deg2, drive, gaussian_llh, make_doc, make_event

SR_TO_DEG2 = (180 / math.pi) ** 2


@pytest.fixture(scope="module")
def scan() -> dict[str, Any]:
    f = gaussian_llh(math.radians(15.0), math.radians(-40.0), 1.0)
    strategy = make_strategy("contour", "8,16,32,64,128,256,512")
    ref = drive(strategy, f)
    event = make_event()
    doc = make_doc(ref.complete, event, strategy.nsides)
    return {"doc": doc, "event": event, "fits": render(doc, event, "fits")}


def lvk_credible_area(uniq: np.ndarray, probdensity: np.ndarray, containment: float) -> float:
    """The LVK user-guide recipe, written from the FITS columns alone."""
    order = (np.log2(uniq // 4) // 2).astype(int)
    area_sr = 4 * np.pi / (12 * 4.0**order)
    idx = np.argsort(-probdensity)
    cum = np.cumsum(probdensity[idx] * area_sr[idx])
    i = int(np.searchsorted(cum, containment))
    return float(area_sr[idx][:i].sum() * SR_TO_DEG2)


def test_columns_and_headers(scan: dict[str, Any]) -> None:
    rendered = scan["fits"]
    assert rendered.media_type == "application/fits" and rendered.filename.endswith(".multiorder.fits")
    with fits.open(io.BytesIO(rendered.content)) as hdul:
        h = hdul[1].header
        assert h["XTENSION"] == "BINTABLE"
        assert h["TTYPE1"] == "UNIQ" and h["TFORM1"] == "K"
        assert h["TTYPE2"] == "PROBDENSITY" and h["TFORM2"] == "D" and h["TUNIT2"] == "sr-1"
        assert h["TTYPE3"] == "LLH"
        names = [h[f"TTYPE{i}"] for i in range(1, h["TFIELDS"] + 1)]
        assert names == ["UNIQ", "PROBDENSITY", "LLH", "X", "Y", "Z", "T", "E_TOT", "E_IN"]
        assert (h["PIXTYPE"], h["ORDERING"], h["COORDSYS"], h["INDXSCHM"]) == (
            "HEALPIX",
            "NUNIQ",
            "C",
            "EXPLICIT",
        )
        assert h["MOCORDER"] == 9
        assert h["OBJECT"] == "run00123456.evt000000000042"
        assert h["DATE-OBS"].startswith("2023-02-25T12:00:00")
        assert h["CREATOR"] == "SkyDriver"
        assert h["MJD-OBS"] == 60000.5
        best = scan["doc"]["best_fit"]
        assert h["RA"] == pytest.approx(best["ra_deg"]) and h["DEC"] == pytest.approx(best["dec_deg"])
        assert h["AREA90"] == pytest.approx(scan["doc"]["regions"]["levels"]["90"]["area_deg2"])


def test_probdensity_recomputes_our_credible_area(scan: dict[str, Any]) -> None:
    table = Table.read(io.BytesIO(scan["fits"].content), format="fits")
    uniq = np.asarray(table["UNIQ"], dtype=np.int64)
    dens = np.asarray(table["PROBDENSITY"], dtype=float)
    order = (np.log2(uniq // 4) // 2).astype(int)
    area_sr = 4 * np.pi / (12 * 4.0**order)
    assert area_sr.sum() == pytest.approx(4 * np.pi, rel=1e-12)  # the tiles cover the sphere once
    assert float((dens * area_sr).sum()) == pytest.approx(1.0, abs=1e-9)
    ours = scan["doc"]["probability"]["credible_areas_deg2"]
    for containment, key in ((0.9, "90"), (0.5, "50")):
        recomputed = lvk_credible_area(uniq, dens, containment)
        assert recomputed == pytest.approx(ours[key], rel=0.01)
    # and for a Gaussian the probability region is the Wilks region
    assert lvk_credible_area(uniq, dens, 0.9) == pytest.approx(cap_area_deg2(1.0, 4.605), rel=0.02)
    wilks90 = scan["doc"]["regions"]["levels"]["90"]["area_deg2"]
    assert lvk_credible_area(uniq, dens, 0.9) == pytest.approx(wilks90, rel=0.02)


def test_llh_and_fit_columns_follow_the_fits(scan: dict[str, Any]) -> None:
    table = Table.read(io.BytesIO(scan["fits"].content), format="fits")
    llh = np.asarray(table["LLH"], dtype=float)
    assert np.nanmin(llh) == pytest.approx(scan["doc"]["best_fit"]["llh"])
    assert np.all(np.asarray(table["X"]) == 10.0)
    assert np.all(np.isnan(np.asarray(table["E_IN"])))
    dens = np.asarray(table["PROBDENSITY"], dtype=float)
    # density falls as -lnL rises: exp(-dLLH)
    i = int(np.nanargmin(llh))
    near = np.flatnonzero(llh - llh[i] < 30.0)
    assert near.size > 100
    np.testing.assert_allclose(dens[near] / dens[i], np.exp(-(llh[near] - llh[i])), rtol=1e-9)


def test_mhealpy_reads_it_as_a_multiorder_map(scan: dict[str, Any], tmp_path: Any) -> None:
    mhealpy = pytest.importorskip("mhealpy")
    path = tmp_path / scan["fits"].filename
    path.write_bytes(scan["fits"].content)
    m = mhealpy.HealpixMap.read_map(str(path), field="PROBDENSITY", density=True)
    assert m.is_moc
    assert m.nside == 512


def test_custom_level_set_keywords(recwarn: pytest.WarningsRecorder) -> None:
    from tests.support.skymaps import full_map

    complete = full_map(16, gaussian_llh(1.0, 0.2, 3.0))
    doc = make_doc(complete, make_event(), [16], level_set="68.27:2.3,95:5.99")
    with fits.open(io.BytesIO(render(doc, None, "fits").content)) as hdul:
        h = hdul[1].header
        assert h["LEVELSET"] == "custom"
        assert h["AREA95"] == pytest.approx(doc["regions"]["levels"]["95"]["area_deg2"])
        assert h["AREA68P27"] == pytest.approx(doc["regions"]["levels"]["68.27"]["area_deg2"])
    assert not [w for w in recwarn if "Keyword name" in str(w.message)]
