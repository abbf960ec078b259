"""Fitting one direction over every vertex variation (used for the truth and reference comparisons)."""

from __future__ import annotations

import math
from typing import Any

from skyscan.physics.recos.base import FitResult, Reco
from skyscan.sky.coordinates import detector_to_equatorial
from skyscan.wire import Direction, Vertex


def detector_direction(zenith: float, azimuth: float, mjd: float) -> Direction:
    """The direction of a fit given in detector coordinates (a truth, IceCube's own fits) at ``mjd``."""
    ra, dec = detector_to_equatorial(zenith, azimuth, mjd)
    return Direction(ra=float(ra), dec=float(dec), zenith=zenith, azimuth=azimuth % (2 * math.pi))


def fit_direction(reco: Reco, prepared: Any, direction: Direction, seed: Vertex | None = None) -> FitResult:
    """Best (NaN-safe minimum) fit over the reco's variations at one fixed direction."""
    best: FitResult | None = None
    for variation in range(reco.n_variations()):
        try:
            result = reco.fit(prepared, direction, variation, seed)
        except Exception as err:  # a reco bug must not take the caller down
            result = FitResult(math.nan, status="failed", error=f"{type(err).__name__}: {err}")
        if result.failed:
            best = best or result
            continue
        if best is None or best.failed or result.llh < best.llh:
            best = result
    assert best is not None
    return best
