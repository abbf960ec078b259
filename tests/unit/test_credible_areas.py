"""Credible areas of the probability map against ligo.skymap's own computation (``crossmatch``).

Every product that reports them (result.json, the GCN summary, the FITS ``CRED50``/``CRED90``
keywords) is compared with what ligo.skymap computes from our multi-order FITS file, on maps where
one tile holds more than 90% of the probability, near RA 0 and at both poles.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from skyscan.refinement.fits import PixelBest, PixelKey
from skyscan.sky import pixels as px
from skyscan.skymap.exports import render
from skyscan.skymap.multiorder import SR_TO_DEG2, credible_area_deg2
from tests.support.skymaps import FIT, drive, full_map, gaussian_llh, make_doc, make_event

crossmatch_mod = pytest.importorskip(
    "ligo.skymap.postprocess.crossmatch", reason="ligo.skymap (test dependency) is not installed"
)
ligo_io = pytest.importorskip("ligo.skymap.io", reason="ligo.skymap (test dependency) is not installed")


def dominant_tile_map(ra_deg: float, dec_deg: float, nside: int = 64) -> dict[PixelKey, PixelBest]:
    """A map where one nside-64 tile holds ~92% of the probability (its 8 neighbours the rest).

    nside 8 over the sky far away (-lnL 200); every nside-64 child of the coarse pixels holding
    the tile and its neighbours is fitted: the tile at 100, its neighbours at 104.5, the rest at 130.
    """
    centre = int(px.radec_pixel(nside, math.radians(ra_deg), math.radians(dec_deg)))
    nbrs = np.asarray(hp.get_all_neighbours(nside, centre))
    nbrs = nbrs[nbrs >= 0]
    complete = {(8, p): PixelBest(8, p, 200.0, 0, dict(FIT), False) for p in range(px.npix(8))}
    parents = {px.parent(nside, int(p), 8) for p in [centre, *nbrs]}
    for parent in parents:
        for child in px.children(8, parent, nside):
            llh = 100.0 if child == centre else 104.5 if child in nbrs else 130.0
            complete[(nside, int(child))] = PixelBest(nside, int(child), llh, 0, dict(FIT), False)
    return complete


def gaussian_scan(ra_deg: float, dec_deg: float, sigma_deg: float) -> dict[PixelKey, PixelBest]:
    from skyscan.refinement.strategies import make_strategy

    f = gaussian_llh(math.radians(ra_deg), math.radians(dec_deg), sigma_deg)
    return dict(drive(make_strategy("contour", "8,16,32,64,128,256"), f).complete)


CASES = {
    "one tile near RA 0": lambda: (dominant_tile_map(0.3, 10.0), [8, 64]),
    "one tile at the south pole": lambda: (dominant_tile_map(12.0, -89.9), [8, 64]),
    "one tile at the north pole": lambda: (dominant_tile_map(200.0, 89.8), [8, 64]),
    "gaussian across RA 0": lambda: (gaussian_scan(359.8, -20.0, 0.6), [8, 16, 32, 64, 128, 256]),
    "gaussian over the south pole": lambda: (gaussian_scan(40.0, -89.0, 1.0), [8, 16, 32, 64, 128, 256]),
    "gaussian at the north pole": lambda: (full_map(64, gaussian_llh(0.0, math.radians(89.5), 2.0)), [64]),
}


def ligo_areas(fits_bytes: bytes, tmp_path: Path) -> list[float]:
    path = tmp_path / "map.multiorder.fits"
    path.write_bytes(fits_bytes)
    sky_map = ligo_io.read_sky_map(str(path), moc=True)
    return list(crossmatch_mod.crossmatch(sky_map, contours=(0.5, 0.9)).contour_areas)


@pytest.mark.parametrize("case", list(CASES))
def test_every_product_agrees_with_ligo_skymap(case: str, tmp_path: Path) -> None:
    complete, nsides = CASES[case]()
    doc = make_doc(complete, make_event(), nsides)
    fits_bytes = render(doc, None, "fits").content
    theirs = ligo_areas(fits_bytes, tmp_path)
    assert all(a > 0 for a in theirs)
    ours = doc["probability"]["credible_areas_deg2"]
    gcn = json.loads(render(doc, None, "gcn").content)["additional_info"]["credible_areas_deg2"]
    with fits.open(io.BytesIO(fits_bytes)) as hdul:
        header = hdul[1].header
        cards = {"50": header["CRED50"], "90": header["CRED90"]}
    for key, expected in zip(("50", "90"), theirs, strict=True):
        assert ours[key] == pytest.approx(expected, rel=0.01), (case, key)
        assert cards[key] == pytest.approx(expected, rel=0.01), (case, key)
        assert gcn[key] == pytest.approx(expected, rel=0.01, abs=1e-4), (case, key)


def dominant_share(doc: dict[str, Any]) -> tuple[float, float]:
    """(probability, area in deg^2) of the tile holding the most probability, from the FITS file."""
    with fits.open(io.BytesIO(render(doc, None, "fits").content)) as hdul:
        uniq = np.asarray(hdul[1].data["UNIQ"], dtype=np.int64)
        dens = np.asarray(hdul[1].data["PROBDENSITY"], dtype=float)
    order = np.floor(np.log2(uniq // 4) / 2).astype(int)
    area = 4 * math.pi / (12 * 4.0**order)
    i = int(np.argmax(dens * area))
    return float(dens[i] * area[i]), float(area[i] * SR_TO_DEG2)


@pytest.mark.parametrize("case", ["one tile near RA 0", "one tile at the south pole"])
def test_a_dominant_tile_counts_with_the_share_the_containment_needs(case: str) -> None:
    complete, nsides = CASES[case]()
    doc = make_doc(complete, make_event(), nsides)
    p_max, tile_deg2 = dominant_share(doc)
    assert 0.9 < p_max < 0.95  # the tile alone holds more than the 90% region needs
    cred = doc["probability"]["credible_areas_deg2"]
    # inside one tile the density is uniform: the region is the share of it the containment needs
    assert cred["50"] == pytest.approx(0.5 / p_max * tile_deg2, rel=1e-9)
    assert cred["90"] == pytest.approx(0.9 / p_max * tile_deg2, rel=1e-9)
    assert 0 < cred["50"] < cred["90"] < tile_deg2


def test_interpolation_between_tiles() -> None:
    # two tiles of 1 sr holding 0.6 and 0.4: 50% needs 5/6 of the first, 90% all of it and 3/4 of the second
    dens = np.array([0.6, 0.4, 0.0])
    area = np.array([1.0, 1.0, 4 * math.pi - 2])
    assert credible_area_deg2(dens, area, 0.5) == pytest.approx(SR_TO_DEG2 * 0.5 / 0.6)
    assert credible_area_deg2(dens, area, 0.9) == pytest.approx(SR_TO_DEG2 * 1.75)
    assert credible_area_deg2(dens, area, 0.0) == 0.0
    assert credible_area_deg2(dens, area, 1.5) == pytest.approx(4 * math.pi * SR_TO_DEG2)
