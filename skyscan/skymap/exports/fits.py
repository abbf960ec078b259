"""Multi-order HEALPix FITS in the ligo.skymap convention (``*.multiorder.fits``).

HDU 1 is a binary table whose first two columns are ``UNIQ`` (int64) and ``PROBDENSITY`` (sr^-1),
as ligo.skymap, mocpy and Aladin read them, followed by ``LLH`` (-lnL of the fit shown by the tile)
and the fit columns. The header carries ``PIXTYPE=HEALPIX``, ``ORDERING=NUNIQ``, ``COORDSYS=C``,
``MOCORDER``, ``INDXSCHM=EXPLICIT``, ``OBJECT``, ``DATE-OBS``, ``CREATOR`` and the best fit, areas
and errors of the regions.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from astropy.io import fits
from astropy.time import Time

from skyscan.physics.event import Event
from skyscan.skymap.exports.common import analysis, event_info, require_best

CREATOR = "SkyDriver"
FIT_COLUMNS = (("X", "m"), ("Y", "m"), ("Z", "m"), ("T", "ns"), ("E_TOT", "GeV"), ("E_IN", "GeV"))


def render_fits(doc: Mapping[str, Any], event: Event | None) -> bytes:
    an = analysis(doc)
    require_best(an, "a FITS map")
    assert an.best is not None
    mom = an.map
    info = event_info(doc, event)
    columns = [
        fits.Column(name="UNIQ", format="K", array=mom.uniq.astype(np.int64)),
        fits.Column(name="PROBDENSITY", format="D", unit="sr-1", array=an.probdensity),
        fits.Column(name="LLH", format="D", array=mom.llh),
    ]
    for name, unit in FIT_COLUMNS:
        key = {"E_TOT": "E_tot", "E_IN": "E_in"}.get(name, name)
        columns.append(fits.Column(name=name, format="D", unit=unit, array=mom.fit_column(an.complete, key)))
    hdu = fits.BinTableHDU.from_columns(columns, name="SKYMAP")
    h = hdu.header
    ra, dec = an.best.radec
    cards: list[tuple[str, Any, str]] = [
        ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
        ("ORDERING", "NUNIQ", "Pixel ordering scheme: RING, NESTED, or NUNIQ"),
        ("COORDSYS", "C", "Ecliptic, Galactic or Celestial (equatorial)"),
        ("MOCORDER", int(mom.max_order), "MOC resolution (best order)"),
        ("INDXSCHM", "EXPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
        ("OBJECT", info.label, "Unique identifier for this event"),
        ("DATE-OBS", info.iso_time, "UTC date of the observation"),
        ("MJD-OBS", info.mjd, "modified Julian date of the observation"),
        ("DATE", Time.now().utc.isot, "UTC date of file creation"),
        ("CREATOR", CREATOR, "Program that created this file"),
        ("RUNID", info.run_id, "IceCube run number"),
        ("EVENTID", info.event_id, "IceCube event number"),
        ("I3TYPE", info.event_type, "Event type"),
        ("SCANID", str(doc.get("scan_id", "")), "SkyDriver scan id"),
        ("RECO", str(doc.get("reco", "")), "Reconstruction"),
        ("COMPLETE", bool(doc.get("complete", False)), "Final (True) or partial result"),
        ("RA", float(np.degrees(ra)), "Best-fit right ascension (deg)"),
        ("DEC", float(np.degrees(dec)), "Best-fit declination (deg)"),
        ("LLHBEST", float(an.best.llh), "-lnL at the best fit"),
        ("LEVELSET", an.level_set, "2*dLLH levels of the regions"),
    ]
    for r in an.regions:
        pct = f"{r.containment * 100:g}".replace(".", "P")  # FITS keywords: no dots
        cards += [
            (f"AREA{pct}", r.area_deg2, f"Area (deg2) of 2*dLLH <= {r.level:g}"),
            (f"RAP{pct}", r.ra_err_plus_deg, f"RA error + (deg), {pct}%"),
            (f"RAM{pct}", r.ra_err_minus_deg, f"RA error - (deg), {pct}%"),
            (f"DECP{pct}", r.dec_err_plus_deg, f"Dec error + (deg), {pct}%"),
            (f"DECM{pct}", r.dec_err_minus_deg, f"Dec error - (deg), {pct}%"),
        ]
    for pct, area in an.credible_areas.items():
        cards.append((f"CRED{pct}", area, f"Area (deg2) of the {pct}% credible region"))
    for key, value, comment in cards:
        h[key if len(key) <= 8 else f"HIERARCH {key}"] = (value, comment)
    h["COMMENT"] = "PROBDENSITY is exp(-dLLH) normalised over the sky; LLH is -lnL of the fit shown."
    h["COMMENT"] = "Tiles no finite fit covers have LLH NaN and PROBDENSITY 0."
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
    return buf.getvalue()
