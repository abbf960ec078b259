"""The flat HEALPix probability map IceCube distributes with its alerts
(``run<RUN>.evt<EVENT>...skymap_nside_1024_probability.fits.gz``).

One binary-table column ``PROB`` holding the probability of each pixel (summing to 1) at a single
nside (1024 by default), RING ordering, equatorial coordinates, gzip-compressed: the layout
``healpy.write_map`` gives and ``healpy.read_map``, ``ligo.skymap`` and Aladin read. The values
come from the multi-order map's ``exp(-dLLH)`` probabilities: a tile coarser than the output
spreads its probability evenly over the pixels it covers, finer tiles add theirs to the pixel that
holds them, so the credible areas agree with the multi-order map's to within a pixel.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping
from typing import Any

import healpy as hp
import numpy as np
from astropy.io import fits
from astropy.time import Time

from skyscan.physics.event import Event
from skyscan.sky import pixels as px
from skyscan.skymap.exports.common import analysis, event_info, require_best
from skyscan.skymap.multiorder import SR_TO_DEG2, MultiOrderMap, order_of, probability

DEFAULT_NSIDE = 1024
CREATOR = "SkyDriver"


def flat_probability(mom: MultiOrderMap, llh_best: float, nside: int = DEFAULT_NSIDE) -> np.ndarray:
    """Probability per pixel of a RING map at ``nside`` (sums to 1)."""
    px.check_nside(nside)
    target = order_of(nside)
    prob = probability(mom, llh_best)
    flat = np.zeros(12 * nside * nside)
    coarse = mom.order <= target
    # tiles are sorted along the NESTED curve, so the coarse tiles' pixels, in order, are exactly
    # the pixels no fine tile touches
    fine_pixel = np.right_shift(mom.nest[~coarse], 2 * (mom.order[~coarse] - target))
    span = np.left_shift(np.int64(1), 2 * (target - mom.order[coarse]))
    free = np.ones(flat.size, bool)
    free[fine_pixel] = False
    flat[free] = np.repeat(prob[coarse] / span, span)
    np.add.at(flat, fine_pixel, prob[~coarse])
    return hp.reorder(flat, n2r=True)  # type: ignore[no-any-return]


def credible_areas_deg2(
    flat: np.ndarray, nside: int, containments: tuple[float, ...] = (0.5, 0.9)
) -> dict[str, float]:
    """Areas of the highest-probability pixel sets holding each containment (the pixel that
    crosses the containment is left out, as for the multi-order map)."""
    cumulative = np.cumsum(np.sort(flat)[::-1])
    pixel_deg2 = hp.nside2pixarea(nside) * SR_TO_DEG2
    return {f"{c * 100:g}": int(np.searchsorted(cumulative, c)) * pixel_deg2 for c in containments}


def render_probability_fits(doc: Mapping[str, Any], event: Event | None, nside: int = DEFAULT_NSIDE) -> bytes:
    an = analysis(doc)
    require_best(an, "a probability map")
    assert an.best is not None
    flat = flat_probability(an.map, an.best.llh, nside)
    info = event_info(doc, event)
    ra, dec = an.best.radec
    column = fits.Column(name="PROB", format="D", unit="pix-1", array=flat)
    hdu = fits.BinTableHDU.from_columns([column], name="xtension")
    cards: list[tuple[str, Any, str]] = [
        ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
        ("ORDERING", "RING", "Pixel ordering scheme, either RING or NESTED"),
        ("COORDSYS", "C", "Ecliptic, Galactic or Celestial (equatorial)"),
        ("NSIDE", nside, "Resolution parameter of HEALPIX"),
        ("FIRSTPIX", 0, "First pixel # (0 based)"),
        ("LASTPIX", flat.size - 1, "Last pixel # (0 based)"),
        ("INDXSCHM", "IMPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
        ("OBJECT", info.label, "Unique identifier for this event"),
        ("RUNID", info.run_id, "IceCube run number"),
        ("EVENTID", info.event_id, "IceCube event number"),
        ("I3TYPE", info.event_type, "Event type"),
        ("DATE-OBS", info.iso_time, "UTC date of the observation"),
        ("MJD-OBS", info.mjd, "modified Julian date of the observation"),
        ("DATE", Time.now().utc.isot, "UTC date of file creation"),
        ("CREATOR", CREATOR, "Program that created this file"),
        ("SCANID", str(doc.get("scan_id", "")), "SkyDriver scan id"),
        ("RECO", str(doc.get("reco", "")), "Reconstruction"),
        ("RA", float(np.degrees(ra)), "Best-fit right ascension (deg)"),
        ("DEC", float(np.degrees(dec)), "Best-fit declination (deg)"),
    ]
    for pct, area in credible_areas_deg2(flat, nside).items():
        cards.append((f"CRED{pct}", area, f"Area (deg2) of the {pct}% credible region"))
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    hdu.header["COMMENT"] = "PROB: probability of each pixel, exp(-dLLH) normalised over the sky."
    raw = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(raw)
    return gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
