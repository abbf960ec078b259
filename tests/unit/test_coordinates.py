"""Equatorial <-> IceCube detector coordinates against astropy's AltAz at the South Pole."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skyscan.sky.coordinates import (
    ICECUBE_LATITUDE_DEG,
    ICECUBE_LONGITUDE_DEG,
    angular_distance,
    detector_to_equatorial,
    equatorial_to_detector,
)

TOLERANCE_DEG = 0.01


def astropy_detector(ra: np.ndarray, dec: np.ndarray, mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """IceCube (zenith, azimuth) via astropy: zenith = 90 deg - altitude, azimuth = pi/2 - A - lon."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, SkyCoord
    from astropy.time import Time

    location = EarthLocation(
        lat=ICECUBE_LATITUDE_DEG * u.deg, lon=ICECUBE_LONGITUDE_DEG * u.deg, height=2835 * u.m
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        altaz = SkyCoord(ra=ra * u.rad, dec=dec * u.rad, frame="icrs").transform_to(
            AltAz(obstime=Time(mjd, format="mjd", scale="utc"), location=location)
        )
    zenith = np.pi / 2 - altaz.alt.rad
    azimuth = np.mod(np.pi / 2 - altaz.az.rad - math.radians(ICECUBE_LONGITUDE_DEG), 2 * np.pi)
    return zenith, azimuth


@pytest.mark.parametrize("mjd", [55000.0, 57517.62789, 60676.3])
def test_matches_astropy_altaz(mjd: float) -> None:
    rng = np.random.default_rng(int(mjd))
    ra = rng.uniform(0, 2 * np.pi, 300)
    dec = np.arcsin(rng.uniform(-1, 1, 300))
    zen_ref, az_ref = astropy_detector(ra, dec, mjd)
    zen, az = equatorial_to_detector(ra, dec, mjd)
    # Compare as directions (azimuth is ill-defined at the zenith).
    sep = angular_distance(az, np.pi / 2 - zen, az_ref, np.pi / 2 - zen_ref)
    assert np.degrees(sep).max() < TOLERANCE_DEG
    ra_back, dec_back = detector_to_equatorial(zen_ref, az_ref, mjd)
    assert np.degrees(angular_distance(ra, dec, ra_back, dec_back)).max() < TOLERANCE_DEG


def test_declination_is_nearly_minus_altitude_at_the_pole() -> None:
    """At the South Pole zenith ~ 90 deg + dec (up to precession since J2000, ~0.006 deg per year)."""
    dec = np.radians(np.array([-80.0, -30.0, 0.0, 45.0]))
    zen, _ = equatorial_to_detector(np.full(4, 1.0), dec, 59000.0)
    assert np.degrees(zen) == pytest.approx(90.0 + np.degrees(dec), abs=0.2)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.001, math.pi - 0.001), st.floats(0.0, 2 * math.pi), st.floats(50000.0, 65000.0))
def test_round_trip(zenith: float, azimuth: float, mjd: float) -> None:
    ra, dec = detector_to_equatorial(zenith, azimuth, mjd)
    zen2, az2 = equatorial_to_detector(ra, dec, mjd)
    sep = angular_distance(azimuth, np.pi / 2 - zenith, az2, np.pi / 2 - zen2)
    assert float(np.degrees(sep)) < 1e-6
    assert 0.0 <= float(ra) < 2 * math.pi and -math.pi / 2 <= float(dec) <= math.pi / 2


def test_vectorised_shapes() -> None:
    zen, az = equatorial_to_detector(np.zeros((3, 4)), np.zeros((3, 4)), 58000.0)
    assert zen.shape == az.shape == (3, 4)
    ra, dec = detector_to_equatorial(1.0, 2.0, 58000.0)
    assert np.ndim(ra) == 0 and np.ndim(dec) == 0
    assert float(angular_distance(0.0, 0.0, math.pi, 0.0)) == pytest.approx(math.pi)
