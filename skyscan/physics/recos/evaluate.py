"""Fitting one direction over every vertex variation (used for the truth comparison)."""

from __future__ import annotations

import math
from typing import Any

from skyscan.physics.recos.base import FitResult, Reco
from skyscan.wire import Direction, Vertex


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
