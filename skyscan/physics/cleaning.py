"""Pulse cleaning before a likelihood fit: keep causally connected light, drop isolated noise.

Seeded RT cleaning (IceCube's SeededRT, described in words in reco_physics_data.md): start from a
core of hard-local-coincidence (HLC) pulses that have an RT neighbour, then repeatedly add every
pulse within ``radius_m`` and ``window_ns`` of a kept pulse on another DOM. Without HLC flags the
core is every pulse with at least two RT neighbours (classic RT cleaning).
"""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 1024  # rows per pairwise block (a time-sorted chunk against the candidates near it in time)


def rt_neighbour_counts(
    positions: np.ndarray,
    times: np.ndarray,
    dom_ids: np.ndarray,
    among: np.ndarray,
    radius_m: float,
    window_ns: float,
) -> np.ndarray:
    """For every pulse, how many pulses in ``among`` (mask) are within radius and time on another DOM.

    Rows are visited in time order in chunks, and each chunk is compared only with the candidates
    inside its time span widened by the window, so the cost grows with the pulse density in time
    rather than with the square of the pulse count.
    """
    n = len(times)
    counts = np.zeros(n, int)
    cand = np.flatnonzero(among)
    if cand.size == 0:
        return counts
    cand = cand[np.argsort(times[cand], kind="stable")]
    cpos, ct, cdom = positions[cand], times[cand], dom_ids[cand]
    r2 = radius_m * radius_m
    row_order = np.argsort(times, kind="stable")
    for start in range(0, n, CHUNK_ROWS):
        rows = row_order[start : start + CHUNK_ROWS]
        lo = int(np.searchsorted(ct, times[rows[0]] - window_ns, side="left"))
        hi = int(np.searchsorted(ct, times[rows[-1]] + window_ns, side="right"))
        if hi <= lo:
            continue
        d2 = ((positions[rows, None, :] - cpos[None, lo:hi, :]) ** 2).sum(axis=2)
        close = (
            (d2 <= r2)
            & (np.abs(times[rows, None] - ct[None, lo:hi]) <= window_ns)
            & (dom_ids[rows, None] != cdom[None, lo:hi])
        )
        counts[rows] = close.sum(axis=1)
    return counts


MANY_PULSES = 20_000  # above this, only each DOM's first pulses take part in the pairwise search
PULSES_PER_DOM_WHEN_MANY = 4


def seeded_rt_cleaning(
    positions: np.ndarray,
    times: np.ndarray,
    dom_ids: np.ndarray,
    hlc: np.ndarray | None,
    radius_m: float = 150.0,
    window_ns: float = 1000.0,
    iterations: int = 3,
) -> np.ndarray:
    """Boolean mask of pulses kept by seeded RT cleaning.

    The pairwise search is quadratic in the pulse count; for very large events (the format allows
    200,000 pulses) only the first few pulses of each DOM take part, and a DOM's later pulses are
    kept when one of its early ones is (the fits use each DOM's first hit and total charge).
    """
    n = len(times)
    if n > MANY_PULSES:
        order = np.lexsort((times, dom_ids))
        sorted_dom = dom_ids[order]
        starts = np.flatnonzero(np.r_[True, sorted_dom[1:] != sorted_dom[:-1]])
        rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
        early = np.zeros(n, bool)
        early[order[rank < PULSES_PER_DOM_WHEN_MANY]] = True
        idx = np.flatnonzero(early)
        kept_early = _seeded_rt(
            positions[idx],
            times[idx],
            dom_ids[idx],
            None if hlc is None else hlc[idx],
            radius_m,
            window_ns,
            iterations,
        )
        kept = np.zeros(n, bool)
        kept[idx[kept_early]] = True
        kept |= ~early & np.isin(dom_ids, dom_ids[idx[kept_early]])
        return kept
    return _seeded_rt(positions, times, dom_ids, hlc, radius_m, window_ns, iterations)


def _seeded_rt(
    positions: np.ndarray,
    times: np.ndarray,
    dom_ids: np.ndarray,
    hlc: np.ndarray | None,
    radius_m: float,
    window_ns: float,
    iterations: int,
) -> np.ndarray:
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
