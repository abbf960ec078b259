"""Multi-order (NUNIQ) HEALPix maps built from the scanned pixels of several nsides.

A scan fits pixels at a coarse nside over the whole sky and at finer nsides where it matters. The
multi-order map tiles the sphere exactly once: each tile takes the value of the *finest* scanned
pixel that contains it, and a coarse pixel that was only partly refined is split into the tiles
its refined children leave over (so partial refinements and running scans still tile the sky).
Tiles that no finite fit covers carry NaN.

Indexing follows the ligo.skymap / IVOA convention: ``uniq = 4 * nside**2 + nest``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import healpy as hp
import numpy as np

from skyscan.refinement.fits import PixelBest, PixelKey
from skyscan.sky import pixels as px

MAX_ORDER = 29
SR_TO_DEG2 = (180.0 / math.pi) ** 2


def order_of(nside: int) -> int:
    px.check_nside(nside)
    return nside.bit_length() - 1


@dataclass(frozen=True)
class MultiOrderMap:
    """Tiles sorted along the NESTED space-filling curve; one value per tile.

    ``source`` indexes ``sources`` (the scanned (nside, RING pixel) whose fit a tile shows) or is -1.
    """

    order: np.ndarray  # int64
    nest: np.ndarray  # int64, NESTED index at the tile's own order
    llh: np.ndarray  # float64, -lnL; NaN where no finite fit covers the tile
    source: np.ndarray  # int64 into ``sources``; -1 for none
    sources: tuple[PixelKey, ...]

    def __len__(self) -> int:
        return int(self.order.size)

    @cached_property
    def nside(self) -> np.ndarray:
        return np.left_shift(np.int64(1), self.order)

    @cached_property
    def uniq(self) -> np.ndarray:
        return 4 * self.nside * self.nside + self.nest

    @cached_property
    def area_sr(self) -> np.ndarray:
        return 4 * np.pi / (12.0 * np.power(4.0, self.order))

    @cached_property
    def area_deg2(self) -> np.ndarray:
        return self.area_sr * SR_TO_DEG2

    @property
    def max_order(self) -> int:
        return int(self.order.max()) if len(self) else 0

    @cached_property
    def source_nside(self) -> np.ndarray:
        """nside of the scanned pixel each tile shows (0 where none)."""
        src_nsides = np.array([k[0] for k in self.sources] + [0], dtype=np.int64)
        return src_nsides[self.source]  # -1 picks the trailing 0

    @cached_property
    def _range_start(self) -> np.ndarray:
        return np.left_shift(self.nest, 2 * (MAX_ORDER - self.order))

    @cached_property
    def radec(self) -> tuple[np.ndarray, np.ndarray]:
        """Tile centres (RA, Dec) in radians."""
        ra = np.empty(len(self))
        dec = np.empty(len(self))
        for o in np.unique(self.order):
            sel = self.order == o
            theta, phi = hp.pix2ang(1 << int(o), self.nest[sel], nest=True)
            ra[sel] = phi
            dec[sel] = np.pi / 2 - theta
        return ra, dec

    @cached_property
    def size_rad(self) -> np.ndarray:
        """Typical angular size of each tile (square root of its area), radians."""
        return np.sqrt(self.area_sr)

    def lookup(self, ra: np.ndarray | float, dec: np.ndarray | float) -> np.ndarray:
        """Index of the tile containing each direction (radians)."""
        ipix = hp.ang2pix(
            1 << MAX_ORDER, np.pi / 2 - np.asarray(dec, float), np.asarray(ra, float), nest=True
        )
        return np.searchsorted(self._range_start, np.asarray(ipix, dtype=np.int64), side="right") - 1

    def tile_of_nest(self, order: int, nest: np.ndarray) -> np.ndarray:
        """Index of the tile containing each NESTED pixel of the given order (at most the map's depth)."""
        start = np.left_shift(np.asarray(nest, dtype=np.int64), 2 * (MAX_ORDER - order))
        return np.searchsorted(self._range_start, start, side="right") - 1

    def fit_column(self, complete: Mapping[PixelKey, PixelBest], name: str) -> np.ndarray:
        """Per-tile value of a fit parameter (``X``, ``E_tot``...) of the scanned pixel shown."""
        values = np.array(
            [_finite_or_nan(complete[k].fit.get(name)) if k in complete else np.nan for k in self.sources]
            + [np.nan]
        )
        return values[self.source]

    def boundaries_radec(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Corner directions (RA, Dec radians), shape (n, 4), of the given tiles."""
        index = np.asarray(index, dtype=np.int64)
        ra = np.empty((index.size, 4))
        dec = np.empty((index.size, 4))
        orders = self.order[index]
        for o in np.unique(orders):
            sel = orders == o
            vec = np.asarray(hp.boundaries(1 << int(o), self.nest[index[sel]], step=1, nest=True))
            vec = vec.reshape(-1, 3, 4)
            theta, phi = hp.vec2ang(np.moveaxis(vec, 1, 2).reshape(-1, 3))
            ra[sel] = phi.reshape(-1, 4)
            dec[sel] = (np.pi / 2 - theta).reshape(-1, 4)
        return ra, dec


def _finite_or_nan(value: object) -> float:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def build_multiorder(complete: Mapping[PixelKey, PixelBest]) -> MultiOrderMap:
    """Tile the sphere with the finest finite fit covering each place (failed fits are ignored)."""
    keys = sorted(k for k, pb in complete.items() if not pb.failed and math.isfinite(pb.llh))
    by_order: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for nside in sorted({k[0] for k in keys}):
        idx = [i for i, k in enumerate(keys) if k[0] == nside]
        ring = np.array([keys[i][1] for i in idx], dtype=np.int64)
        nest = np.asarray(hp.ring2nest(nside, ring), dtype=np.int64)
        llh = np.array([complete[keys[i]].llh for i in idx], dtype=float)
        order = np.argsort(nest)
        by_order[order_of(nside)] = (nest[order], llh[order], np.asarray(idx, dtype=np.int64)[order])
    max_order = max(by_order, default=0)

    # ancestors[o]: tiles at order o that contain some scanned pixel of a deeper order
    ancestors: dict[int, np.ndarray] = {max_order: np.empty(0, dtype=np.int64)}
    for o in range(max_order - 1, -1, -1):
        deeper = [ancestors[o + 1]]
        if o + 1 in by_order:
            deeper.append(by_order[o + 1][0])
        ancestors[o] = np.unique(np.concatenate(deeper) >> 2)

    tiles = np.arange(12, dtype=np.int64)
    vals = np.full(12, np.nan)
    srcs = np.full(12, -1, dtype=np.int64)
    out_order, out_nest, out_llh, out_src = [], [], [], []
    for o in range(max_order + 1):
        if o in by_order:
            s_nest, s_llh, s_idx = by_order[o]
            pos = np.searchsorted(s_nest, tiles)
            pos_c = np.minimum(pos, max(s_nest.size - 1, 0))
            hit = (
                (pos < s_nest.size) & (s_nest[pos_c] == tiles) if s_nest.size else np.zeros(tiles.size, bool)
            )
            vals = vals.copy()
            srcs = srcs.copy()
            vals[hit] = s_llh[pos_c[hit]]
            srcs[hit] = s_idx[pos_c[hit]]
        split = np.isin(tiles, ancestors[o]) if o < max_order else np.zeros(tiles.size, bool)
        keep = ~split
        out_order.append(np.full(int(keep.sum()), o, dtype=np.int64))
        out_nest.append(tiles[keep])
        out_llh.append(vals[keep])
        out_src.append(srcs[keep])
        if not split.any():
            break
        tiles = (tiles[split][:, None] * 4 + np.arange(4, dtype=np.int64)).ravel()
        vals = np.repeat(vals[split], 4)
        srcs = np.repeat(srcs[split], 4)

    order_a = np.concatenate(out_order)
    nest_a = np.concatenate(out_nest)
    start = np.left_shift(nest_a, 2 * (MAX_ORDER - order_a))
    perm = np.argsort(start, kind="stable")
    return MultiOrderMap(
        order=order_a[perm],
        nest=nest_a[perm],
        llh=np.concatenate(out_llh)[perm],
        source=np.concatenate(out_src)[perm],
        sources=tuple(keys),
    )


# --------------------------------------------------------------------------------------------
# Probability map
# --------------------------------------------------------------------------------------------


def probability(mom: MultiOrderMap, llh_min: float | None = None) -> np.ndarray:
    """Probability per tile, proportional to exp(-(llh - llh_min)) x area, normalised over the sky."""
    finite = np.isfinite(mom.llh)
    if not finite.any():
        return np.zeros(len(mom))
    ref = float(np.min(mom.llh[finite])) if llh_min is None else llh_min
    weight = np.zeros(len(mom))
    weight[finite] = np.exp(-(mom.llh[finite] - ref)) * mom.area_sr[finite]
    total = weight.sum()
    return weight / total if total > 0 else weight


def probdensity(mom: MultiOrderMap, llh_min: float | None = None) -> np.ndarray:
    """Probability density per steradian (the ``PROBDENSITY`` column of multi-order FITS)."""
    return probability(mom, llh_min) / mom.area_sr


def credible_area_deg2(density: np.ndarray, area_sr: np.ndarray, containment: float) -> float:
    """Area of the highest-density region holding ``containment`` of the probability (deg^2).

    As ligo.skymap computes it (``ligo-skymap-stats``, ``crossmatch``): tiles sorted by density,
    the cumulative area interpolated linearly in the cumulative probability from (0, 0). The tile
    that crosses the containment counts with the share of its area the missing probability needs
    (its density is uniform), so a map where one tile holds most of the probability still gets a
    non-zero area; containments beyond what the map holds give the whole sky.
    """
    order = np.argsort(-density, kind="stable")
    cum_prob = np.concatenate([[0.0], np.cumsum(density[order] * area_sr[order])])
    cum_area = np.concatenate([[0.0], np.cumsum(area_sr[order])])
    area = np.interp(containment, cum_prob, cum_area, right=4 * np.pi)
    return float(area * SR_TO_DEG2)
