"""The batched compass search the track recos fit their vertex with (pure: any objective).

Each iteration evaluates a whole stencil around the current point in one vectorised call, moves
to the best point that improves, or halves the step when none does. A pass ends when the step
falls below ``min_step``; the passes run in turn from the point the last one reached.

Two things are never evaluated, and neither changes the walk: points outside the feasible
region (they count as +inf), and points an earlier stencil already evaluated (after a move the
stencil shares the old centre with the one before it, and in a 26-point cube up to 17 points):
values are kept per exact point, so the path is the same point for point at fewer evaluations.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

AXES = np.vstack([np.eye(3), -np.eye(3)])  # the 6 axis neighbours
CUBE = np.array([o for o in itertools.product((-1.0, 0.0, 1.0), repeat=3) if any(o)])  # all 26
IMPROVEMENT = 1e-9  # a move must lower the objective by more than this


@dataclass(frozen=True)
class SearchResult:
    point: np.ndarray
    value: float
    iterations: int
    evaluations: int  # points the objective was called on
    converged: bool  # every pass ended on its step, not on max_iterations


def pattern_search(
    objective: Callable[[np.ndarray], np.ndarray],
    start: np.ndarray,
    start_value: float,
    passes: Sequence[tuple[np.ndarray, float]],
    min_step: float,
    max_iterations: int,
    feasible: Callable[[np.ndarray], np.ndarray],
) -> SearchResult:
    """Minimise ``objective`` ((points, dims) -> (points,)) from ``start``; ``passes`` are
    (stencil, first step) pairs, ``feasible`` maps points to a boolean mask."""
    centre, best = np.array(start, dtype=float), float(start_value)
    known: dict[tuple[float, ...], float] = {}
    iterations = evaluations = 0
    for stencil, first_step in passes:
        steps = np.full(centre.shape, float(first_step))
        while iterations < max_iterations:
            iterations += 1
            points = centre + stencil * steps
            keys = list(map(tuple, points.tolist()))
            inside = feasible(points)
            todo = [i for i, key in enumerate(keys) if inside[i] and key not in known]
            if todo:
                known.update(zip([keys[i] for i in todo], objective(points[todo]).tolist(), strict=True))
                evaluations += len(todo)
            values = np.array([known[key] if inside[i] else np.inf for i, key in enumerate(keys)])
            k = int(np.argmin(values))
            if values[k] < best - IMPROVEMENT:
                centre, best = points[k].copy(), float(values[k])
            else:
                steps *= 0.5
                if steps[0] < min_step:
                    break
    return SearchResult(centre, best, iterations, evaluations, iterations < max_iterations)
