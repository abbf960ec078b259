"""Fit records the refinement and the skymap share: one variation's result, a pixel's best.

A leaf module (pixels only), so the skymap can use these types without importing the refinement.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from skyscan.sky import pixels as px

PixelKey = tuple[int, int]  # (nside, RING pixel)

FIT_VERTEX_KEYS = ("X", "Y", "Z", "T")


@dataclass(frozen=True)
class VariationResult:
    """One fit result as the state machine needs it (the wire PixelResult maps onto this)."""

    nside: int
    pixel: int
    variation: int
    llh: float  # NaN when failed
    fit: Mapping[str, float | None] = field(default_factory=dict)
    failed: bool = False
    error: str | None = None


@dataclass(frozen=True)
class PixelBest:
    """The best variation of a completed pixel; llh is NaN when every variation failed."""

    nside: int
    pixel: int
    llh: float
    variation: int
    fit: Mapping[str, float | None]
    failed: bool
    error: str | None = None

    @property
    def key(self) -> PixelKey:
        return (self.nside, self.pixel)

    @property
    def radec(self) -> tuple[float, float]:
        ra, dec = px.pixel_radec(self.nside, self.pixel)
        return float(ra), float(dec)


def best_of(results: Iterable[VariationResult]) -> PixelBest:
    """NaN-safe minimum over variations (ties go to the lower variation index)."""
    ordered = sorted(results, key=lambda r: r.variation)
    finite = [r for r in ordered if not r.failed and math.isfinite(r.llh)]
    if finite:
        r = min(finite, key=lambda r: (r.llh, r.variation))
        return PixelBest(r.nside, r.pixel, r.llh, r.variation, dict(r.fit), False)
    r = ordered[0]
    errors = "; ".join(sorted({x.error for x in ordered if x.error}))
    return PixelBest(r.nside, r.pixel, math.nan, r.variation, dict(r.fit), True, errors or "fit failed")


def global_best(complete: Mapping[PixelKey, PixelBest]) -> PixelBest | None:
    """Lowest finite llh across all nsides; ties prefer the finer nside, then the lower pixel."""
    best: PixelBest | None = None
    for pb in complete.values():
        if pb.failed or not math.isfinite(pb.llh):
            continue
        if best is None or (pb.llh, -pb.nside, pb.pixel) < (best.llh, -best.nside, best.pixel):
            best = pb
    return best
