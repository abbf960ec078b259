"""Pulse cleaning before a likelihood fit: keep causally connected light, drop isolated noise.

Seeded RT cleaning (IceCube's SeededRT, described in words in reco_physics_data.md): start from a
core of hard-local-coincidence (HLC) pulses that have an RT neighbour, then repeatedly add every
pulse within ``radius_m`` and ``window_ns`` of a kept pulse on another DOM. Without HLC flags the
core is every pulse with at least two RT neighbours (classic RT cleaning).
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 2048  # bounds the pairwise (rows x n) boolean block to a few MB


def rt_neighbour_counts(
    positions: np.ndarray,
    times: np.ndarray,
    dom_ids: np.ndarray,
    among: np.ndarray,
    radius_m: float,
    window_ns: float,
) -> np.ndarray:
    """For every pulse, how many pulses in ``among`` (mask) are within radius and time on another DOM."""
    n = len(times)
    counts = np.zeros(n, int)
    cand = np.flatnonzero(among)
    if cand.size == 0:
        return counts
    cpos, ct, cdom = positions[cand], times[cand], dom_ids[cand]
    r2 = radius_m * radius_m
    for start in range(0, n, CHUNK_ROWS):
        sl = slice(start, min(n, start + CHUNK_ROWS))
        d2 = ((positions[sl, None, :] - cpos[None, :, :]) ** 2).sum(axis=2)
        close = (
            (d2 <= r2)
            & (np.abs(times[sl, None] - ct[None, :]) <= window_ns)
            & (dom_ids[sl, None] != cdom[None, :])
        )
        counts[sl] = close.sum(axis=1)
    return counts


def seeded_rt_cleaning(
    positions: np.ndarray,
    times: np.ndarray,
    dom_ids: np.ndarray,
    hlc: np.ndarray | None,
    radius_m: float = 150.0,
    window_ns: float = 1000.0,
    iterations: int = 3,
) -> np.ndarray:
    """Boolean mask of pulses kept by seeded RT cleaning."""
    n = len(times)
    everything = np.ones(n, bool)
    if hlc is not None and hlc.any():
        core = hlc & (rt_neighbour_counts(positions, times, dom_ids, hlc, radius_m, window_ns) >= 1)
    else:
        core = np.zeros(n, bool)
    if not core.any():
        core = rt_neighbour_counts(positions, times, dom_ids, everything, radius_m, window_ns) >= 2
    kept = core.copy()
    for _ in range(iterations):
        grown = kept | (rt_neighbour_counts(positions, times, dom_ids, kept, radius_m, window_ns) >= 1)
        if np.array_equal(grown, kept):
            break
        kept = grown
    return kept


def first_hits(
    dom_ids: np.ndarray, times: np.ndarray, charges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per DOM: index of its earliest pulse, that pulse's time, and the DOM's total charge."""
    order = np.lexsort((times, dom_ids))
    sorted_dom = dom_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_dom[1:] != sorted_dom[:-1]])
    first = order[starts]
    totals = np.add.reduceat(charges[order], starts)
    return first, times[first], totals
