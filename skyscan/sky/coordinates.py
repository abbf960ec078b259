"""Equatorial (RA, Dec, ICRS) <-> IceCube detector (zenith, azimuth) directions at an event time.

IceCube angles give where a particle *comes from*: the zenith is the source's zenith distance at
the detector and the azimuth phi is measured in the detector frame (x grid east, y grid north),
related to the astronomical azimuth A (from north through east) by ``A = pi/2 - phi - lon``.

The transform is the full ICRS <-> observed chain of the IAU SOFA/ERFA library (the one astropy's
``AltAz`` frame uses): precession-nutation, Earth rotation (UT1 from the bundled IERS tables), polar
motion where tabulated, annual and diurnal aberration, light deflection, and the detector's real
position (0.0056 deg from the pole). Refraction is off (neutrinos do not refract). The per-event
astrometry context is computed once per MJD (``erfa.apco13``, cached); the conversions are then
vectorised ERFA ufuncs (``atciq``/``atioq`` and inverses). Agreement with astropy's AltAz is at the
milli-arcsecond level.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import erfa
import numpy as np
from astropy.time import Time
from astropy.utils import iers

# Never reach out to the network for IERS tables: the bundled ones (astropy-iers-data) suffice,
# and dates beyond them fall back to UT1 = UTC (|UT1-UTC| < 0.9 s, i.e. < 0.004 deg).
iers.conf.auto_download = False
iers.conf.auto_max_age = None

ICECUBE_LATITUDE_DEG = -89.9944
ICECUBE_LONGITUDE_DEG = -63.453056
ICECUBE_HEIGHT_M = 2835.0
_LON = math.radians(ICECUBE_LONGITUDE_DEG)
_ARCSEC = math.pi / (180.0 * 3600.0)


@lru_cache(maxsize=1024)
def astrometry_context(mjd: float) -> np.ndarray:
    """ERFA star-independent astrometry parameters for an observer at IceCube at UTC ``mjd``."""
    t = Time(mjd, format="mjd", scale="utc")
    dut1, xp, yp = 0.0, 0.0, 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dut1 = float((t.ut1.jd1 - t.jd1) + (t.ut1.jd2 - t.jd2)) * 86400.0
        except (iers.IERSRangeError, ValueError, IndexError):
            dut1 = 0.0
        try:
            pm_x, pm_y = iers.earth_orientation_table.get().pm_xy(t)
            xp, yp = float(pm_x.to_value("arcsec")) * _ARCSEC, float(pm_y.to_value("arcsec")) * _ARCSEC
        except (iers.IERSRangeError, ValueError, IndexError, KeyError):
            xp, yp = 0.0, 0.0
        if not (math.isfinite(xp) and math.isfinite(yp)):
            xp, yp = 0.0, 0.0
        astrom, _eo = erfa.apco13(
            t.jd1,
            t.jd2,
            dut1,
            _LON,
            math.radians(ICECUBE_LATITUDE_DEG),
            ICECUBE_HEIGHT_M,
            xp,
            yp,
            0.0,
            0.0,
            0.0,
            1.0,
        )
    return astrom


def equatorial_to_detector(
    ra: np.ndarray | float, dec: np.ndarray | float, mjd: float
) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) in radians -> (zenith, azimuth) in radians, azimuth in [0, 2 pi)."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    astrom = astrometry_context(float(mjd))
    ri, di = erfa.atciq(ra, dec, 0.0, 0.0, 0.0, 0.0, astrom)
    aob, zob, _hob, _dob, _rob = erfa.atioq(ri, di, astrom)
    azimuth = np.mod(np.pi / 2 - aob - _LON, 2 * np.pi)
    return np.asarray(zob, float), np.asarray(azimuth, float)


def detector_to_equatorial(
    zenith: np.ndarray | float, azimuth: np.ndarray | float, mjd: float
) -> tuple[np.ndarray, np.ndarray]:
    """(zenith, azimuth) in radians -> (RA, Dec) in radians, RA in [0, 2 pi)."""
    zenith, azimuth = np.asarray(zenith, float), np.asarray(azimuth, float)
    astrom = astrometry_context(float(mjd))
    astro_az = np.mod(np.pi / 2 - azimuth - _LON, 2 * np.pi)
    ri, di = erfa.atoiq("A", astro_az, zenith, astrom)
    rc, dc = erfa.aticq(ri, di, astrom)
    return np.mod(np.asarray(rc, float), 2 * np.pi), np.asarray(dc, float)


def angular_distance(
    ra1: np.ndarray | float, dec1: np.ndarray | float, ra2: np.ndarray | float, dec2: np.ndarray | float
) -> np.ndarray:
    """Great-circle distance in radians (Vincenty form, stable at all separations)."""
    dra = np.asarray(ra2) - np.asarray(ra1)
    s1, c1 = np.sin(dec1), np.cos(dec1)
    s2, c2 = np.sin(dec2), np.cos(dec2)
    num = np.hypot(c2 * np.sin(dra), c1 * s2 - s1 * c2 * np.cos(dra))
    den = s1 * s2 + c1 * c2 * np.cos(dra)
    return np.arctan2(num, den)


def detector_separation(
    zenith1: np.ndarray | float,
    azimuth1: np.ndarray | float,
    zenith2: np.ndarray | float,
    azimuth2: np.ndarray | float,
) -> np.ndarray:
    """Angle in radians between two directions given in detector coordinates (zenith, azimuth)."""
    lat1, lat2 = np.pi / 2 - np.asarray(zenith1), np.pi / 2 - np.asarray(zenith2)
    return angular_distance(azimuth1, lat1, azimuth2, lat2)
