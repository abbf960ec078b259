"""Equatorial (RA, Dec, ICRS) <-> IceCube detector (zenith, azimuth) directions at an event time.

IceCube frame: z up at the South Pole, y ("grid north") along the Greenwich meridian, x ("grid
east") towards 90 deg E. A particle *arriving from* zenith theta and azimuth phi has source
direction (sin t cos p, sin t sin p, cos t) in that frame, which is, in the Earth-fixed ITRS frame,
(sin t sin p, sin t cos p, -cos t). The Earth-fixed to celestial rotation is IAU 2006/2000A
(``erfa.c2t06a``) at the event's UT1/TT; polar motion (< 1") and annual aberration (< 21") are
neglected, which keeps agreement with astropy's full AltAz chain well inside 0.01 deg.
"""

from __future__ import annotations

from functools import lru_cache

import erfa
import numpy as np
from astropy.time import Time
from astropy.utils import iers

# Never reach out to the network for IERS tables: the bundled ones (astropy-iers-data) suffice,
# and dates beyond them fall back to UT1 = UTC (|UT1-UTC| < 0.9 s, i.e. < 0.004 deg).
iers.conf.auto_download = False
iers.conf.auto_max_age = None


@lru_cache(maxsize=256)
def celestial_to_terrestrial(mjd: float) -> np.ndarray:
    """3x3 rotation taking a GCRS direction to ITRS at the given UTC MJD."""
    t = Time(mjd, format="mjd", scale="utc")
    tt = t.tt
    try:
        ut1 = t.ut1
        ut1_jd1, ut1_jd2 = ut1.jd1, ut1.jd2
    except (iers.IERSRangeError, ValueError, IndexError):
        ut1_jd1, ut1_jd2 = t.jd1, t.jd2
    return np.asarray(erfa.c2t06a(tt.jd1, tt.jd2, ut1_jd1, ut1_jd2, 0.0, 0.0))


def _unit(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def equatorial_to_detector(ra: np.ndarray | float, dec: np.ndarray | float, mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) in radians -> (zenith, azimuth) in radians, azimuth in [0, 2 pi)."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    s_gcrs = _unit(np.pi / 2 - dec, ra)
    s_itrs = s_gcrs @ celestial_to_terrestrial(mjd).T
    ic_x, ic_y, ic_z = s_itrs[..., 1], s_itrs[..., 0], -s_itrs[..., 2]
    zenith = np.arccos(np.clip(ic_z, -1.0, 1.0))
    azimuth = np.mod(np.arctan2(ic_y, ic_x), 2 * np.pi)
    return zenith, azimuth


def detector_to_equatorial(
    zenith: np.ndarray | float, azimuth: np.ndarray | float, mjd: float
) -> tuple[np.ndarray, np.ndarray]:
    """(zenith, azimuth) in radians -> (RA, Dec) in radians, RA in [0, 2 pi)."""
    ic = _unit(np.asarray(zenith, float), np.asarray(azimuth, float))
    s_itrs = np.stack([ic[..., 1], ic[..., 0], -ic[..., 2]], axis=-1)
    s_gcrs = s_itrs @ celestial_to_terrestrial(mjd)
    dec = np.arcsin(np.clip(s_gcrs[..., 2], -1.0, 1.0))
    ra = np.mod(np.arctan2(s_gcrs[..., 1], s_gcrs[..., 0]), 2 * np.pi)
    return ra, dec


def angular_distance(ra1: np.ndarray | float, dec1: np.ndarray | float, ra2: np.ndarray | float, dec2: np.ndarray | float) -> np.ndarray:
    """Great-circle distance in radians (Vincenty form, stable at all separations)."""
    dra = np.asarray(ra2) - np.asarray(ra1)
    s1, c1 = np.sin(dec1), np.cos(dec1)
    s2, c2 = np.sin(dec2), np.cos(dec2)
    num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
    den = s1 * s2 + c1 * c2 * np.cos(dra)
    return np.arctan2(num, den)
